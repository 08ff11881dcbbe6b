"""The waiting room in the cluster's own nginx image, with the config `up` renders.

nginx runs here in front of a plain HTTP server under pretix's service name: what
is tested is the gate (who passes, who waits, in which order, which cookies count),
which does not depend on what stands behind it. The load test runs it in front of
pretix (`pretix-cluster loadtest` with [waiting_room] on).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons import nginx
from pretix_cluster.images import build
from pretix_cluster.images.build import ImageSet
from pretix_cluster.render.configs import nginx_files
from pretix_cluster.spec import PORTS, ClusterSpec, parse_spec
from pretix_cluster.status import container_run
from tests.commandline import cli

pytestmark = pytest.mark.integration

PORT_A, PORT_B = 18496, 18497
ROOM = {"buyers_per_node": 2, "refresh": 2, "active_timeout": 12, "admitted_for": 60}
EVENT = "/demo/tickets/"
KEY = "the-clusters-waiting-room-key"
# Generous: the waiting room's clock is in whole seconds.
WAIT_S = 45


@pytest.fixture(scope="module")
def images(spec_file: Path) -> ImageSet:
    """The images `up` would run (built now if missing: seconds when they exist)."""
    cli("build", spec_file=spec_file)
    cluster = Cluster.from_file(spec_file)
    return build.planned_tags(cluster.spec.images.base, cluster.ca_bundle())


def write_files(spec: ClusterSpec, key: str, directory: Path) -> dict[str, Path]:
    directory.mkdir()
    paths = {}
    for f in nginx_files(spec, {nginx.WAITING_ROOM_KEY: key}, None):
        paths[f.name] = directory / f.name
        paths[f.name].write_text(f.content)
        paths[f.name].chmod(0o444)  # nginx runs as www-data
    return paths


def mounts(spec: ClusterSpec, paths: dict[str, Path]) -> dict[str, dict[str, str]]:
    """The files where the stack puts them (render/stack.py's nginx service)."""
    targets = {"nginx.conf": "/etc/nginx/nginx.conf"}
    targets |= {page: f"{nginx.PAGES_DIR}/{page}" for page in nginx.page_files(spec)}
    targets |= {name: f"{nginx.SECRETS_DIR}/{name}" for name in nginx.secret_files(spec)}
    return {str(paths[name]): {"bind": target, "mode": "ro"} for name, target in targets.items()}


@pytest.fixture(scope="module")
def edges(images, tmp_path_factory) -> Iterator[None]:
    """Two nginx (two entry nodes) with the same key, and one with another key."""
    client = docker.from_env()
    network = client.networks.create("pctest-waiting-room", driver="bridge")
    started = []
    try:
        web = client.containers.create(
            images["pretix"],
            entrypoint=["python3", "-m", "http.server", str(PORTS.web)],
            name="pctest-wr-web",
        )
        started.append(web)
        network.connect(web, aliases=["web"])  # the name nginx.conf proxies to
        web.start()
        for port, key in ((PORT_A, KEY), (PORT_B, KEY), (PORT_B + 1, "another-key")):
            spec = parse_spec(
                {"cluster": {"url": f"http://127.0.0.1:{port}"}, "waiting_room": ROOM}
            )
            paths = write_files(spec, key, tmp_path_factory.mktemp(f"edge{port}") / "files")
            started.append(
                client.containers.run(
                    images["nginx"],
                    name=f"pctest-wr-nginx-{port}",
                    network=network.name,
                    ports={f"{PORTS.nginx}/tcp": ("127.0.0.1", port)},
                    volumes=mounts(spec, paths),
                    detach=True,
                )
            )
        for port in (PORT_A, PORT_B, PORT_B + 1):
            wait_for_nginx(port)
        yield
    finally:
        for container in started:
            container.remove(force=True)
        network.remove()


def wait_for_nginx(port: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/nginx-health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"nginx on {port} did not start")


class Buyer:
    """A browser: its own cookies, one entry node."""

    def __init__(self, port: int = PORT_A):
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def get(self, path: str = EVENT) -> httpx.Response:
        return self.client.get(path)

    def place(self, path: str = EVENT) -> int | None:
        """Their place in line, None when let through."""
        answer = self.get(path)
        header = answer.headers.get(nginx.POSITION_HEADER)
        return int(header) if header else None


def restart_room(port: int = PORT_A) -> None:
    """An empty room: nginx's shared dict lives as long as the container."""
    docker.from_env().containers.get(f"pctest-wr-nginx-{port}").restart(timeout=2)
    wait_for_nginx(port)


@pytest.fixture
def room(edges) -> None:
    for port in (PORT_A, PORT_B, PORT_B + 1):
        restart_room(port)


def test_buyers_beyond_the_rooms_size_wait_with_their_place(room):
    buyers = [Buyer() for _ in range(4)]
    assert [b.place() for b in buyers] == [None, None, 1, 2]
    waiting = buyers[3].get()
    assert waiting.status_code == 503
    assert waiting.headers["cache-control"] == "no-store"
    assert 'Your place in line: <span class="place">2</span>' in waiting.text
    assert nginx.POSITION_MARKER not in waiting.text
    # the admitted ones keep passing
    assert buyers[0].place() is None and buyers[1].place() is None


def test_what_a_buyer_never_queues_for_passes_while_the_room_is_full(room):
    for _ in range(2):
        Buyer().get()
    waiting = Buyer()
    assert waiting.place() == 1
    for path in (
        "/api/v1/organizers/",
        "/control/login",
        "/demo/",
        "/",
        "/demo/tickets/order/ABC12/s3cr3t/",
        "/_stripe/webhook/",
        "/demo/tickets/stripe/webhook/",
        "/nginx-health",
    ):
        assert waiting.place(path) is None, path
    assert waiting.place() == 1


def test_the_line_is_first_come_first_served_as_places_free_up(room):
    active, idle = Buyer(), Buyer()
    active.get(), idle.get()
    first, second = Buyer(), Buyer()
    assert (first.place(), second.place()) == (1, 2)
    admitted: list[Buyer] = []
    deadline = time.monotonic() + WAIT_S
    # `idle` stops asking: its place frees after active_timeout; `active` keeps its own.
    while len(admitted) < 2 and time.monotonic() < deadline:
        time.sleep(ROOM["refresh"])
        active.get()
        for buyer in (first, second):
            if buyer not in admitted and buyer.place() is None:
                admitted.append(buyer)
    assert admitted == [first, second]


def test_an_admitted_buyer_is_never_sent_back(room):
    idler = Buyer()
    idler.get()
    # The idler's place frees; two others take the room's two places.
    time.sleep(ROOM["active_timeout"] + 1)
    others = [Buyer(), Buyer()]
    assert [b.place() for b in others] == [None, None]
    assert Buyer().place() == 1  # full
    assert idler.place() is None  # back from a pause in the checkout: still in


def test_a_forged_or_foreign_cookie_admits_nobody_and_jumps_no_line(room):
    for _ in range(2):
        Buyer().get()
    queued = Buyer()
    assert queued.place() == 1
    assert Buyer().place() == 2
    ticket = queued.client.cookies["pc_queue"]
    generation, _number, sig = ticket.split(".")
    cheat = Buyer()
    cheat.client.cookies.set("pc_queue", f"{generation}.1.{sig}")
    assert cheat.place() == 3  # a new ticket at the back, not the first place
    forger = Buyer()
    forger.client.cookies.set("pc_admit", f"{'a' * 16}.{int(time.time()) + 600}.{sig}")
    assert forger.place() == 4
    # An admission from a node with another key counts for nothing here.
    other = Buyer(PORT_B + 1)
    assert other.place() is None
    foreign = Buyer()
    foreign.client.cookies.set("pc_admit", other.client.cookies["pc_admit"])
    assert foreign.place() == 5


def test_an_admission_holds_at_every_entry_node_of_the_cluster(room):
    admitted = Buyer(PORT_A)
    admitted.get()
    for _ in range(2):
        Buyer(PORT_B).get()
    assert Buyer(PORT_B).place() == 1  # node B is full
    moved = Buyer(PORT_B)
    moved.client.cookies.set("pc_admit", admitted.client.cookies["pc_admit"])
    assert moved.place() is None  # the buyer's entry node died: the other lets them in


def test_a_placed_order_frees_the_buyers_place_at_once(room):
    buyers = [Buyer(), Buyer()]
    for buyer in buyers:
        buyer.get()
    waiting = Buyer()
    assert waiting.place() == 1
    assert buyers[0].place("/demo/tickets/order/ABC12/s3cr3t/") is None
    assert waiting.place() is None  # no active_timeout to wait out
    assert buyers[0].place() is None  # still admitted


def test_a_buyer_at_the_front_waits_at_the_door_and_goes_in_when_a_place_frees(room):
    buyers = [Buyer(), Buyer()]
    for buyer in buyers:
        buyer.get()
    at_the_door = Buyer()
    answers: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(at_the_door.get()))
    waiting.start()
    time.sleep(ROOM["refresh"] / 3)  # nginx holds the request meanwhile
    buyers[0].get("/demo/tickets/order/ABC12/s3cr3t/")
    waiting.join()
    (answer,) = answers
    assert nginx.POSITION_HEADER not in answer.headers  # passed on, not the page
    assert float(answer.headers[nginx.WAITED_HEADER]) > 0
    assert at_the_door.place() is None


def test_the_page_comes_back_soon_near_the_front_and_after_refresh_further_back(room):
    for _ in range(2):
        Buyer().get()
    near = [Buyer() for _ in range(2)]  # as many as the room holds: at the door
    assert [b.place() for b in near] == [1, 2]
    far = Buyer()
    answer = far.get()
    assert answer.headers[nginx.POSITION_HEADER] == "3"
    assert answer.headers["retry-after"] == str(ROOM["refresh"])
    assert f'content="{ROOM["refresh"]}"' in answer.text
    answer = near[0].get()
    assert answer.headers["retry-after"] == "1"


def test_status_reads_each_rooms_places_and_line_in_the_container(room):
    for _ in range(2):
        Buyer().get()
    far = [Buyer() for _ in range(3)]
    assert [b.place() for b in far] == [1, 2, 3]
    container = docker.from_env().containers.get(f"pctest-wr-nginx-{PORT_A}")
    spec = parse_spec({"cluster": {"url": f"http://127.0.0.1:{PORT_A}"}, "waiting_room": ROOM})
    state = nginx.probe_waiting_room(container_run(container), spec, timeout=10)
    assert state == nginx.WaitingRoomState(places=2, active=2, waiting=3, tickets=5, admitted=2)
