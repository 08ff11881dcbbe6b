"""The lab's pure parts: names, addresses, how nodes and the registry are run, bad input."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from pretix_cluster.errors import UserError
from pretix_cluster.images import build
from pretix_cluster.images.registry import qualified, split_tag
from pretix_cluster.lab import control, images
from pretix_cluster.lab.addresses import (
    LabAddresses,
    choose_subnet,
    parse_route_table,
)
from pretix_cluster.lab.names import LAB_LABEL, ROLE_LABEL, LabNames
from pretix_cluster.lab.nodes import NODE_SHARED_DIR, NodePlan, shared_dir_of
from pretix_cluster.lab.registry import Registry, create_kwargs

NAMES = LabNames("lab")
ADDRESSES = LabAddresses(ipaddress.ip_network("172.30.0.0/24"))


# --- names ---------------------------------------------------------------------------------


def test_every_name_derives_from_the_lab_name():
    names = LabNames.checked("demo")
    assert (names.network, names.node(2), names.disk(2)) == ("demo", "demo-2", "demo-2-disk")
    assert (names.registry, names.registry_volume) == ("demo-registry", "demo-registry-data")


@pytest.mark.parametrize("bad", ["Lab", "lab_1", "-lab", "lab-", "1lab", "", "x" * 44])
def test_a_lab_name_must_be_a_dns_label(bad):
    with pytest.raises(UserError, match="cannot name a lab"):
        LabNames.checked(bad)


@pytest.mark.parametrize(("reference", "index"), [("lab-2", 2), ("2", 2), ("lab-10", 10)])
def test_a_node_is_named_by_its_container_name_or_its_number(reference, index):
    assert NAMES.node_index(reference) == index


@pytest.mark.parametrize("bad", ["other-2", "lab-0", "0", "lab-x", "lab-"])
def test_a_node_of_another_naming_is_refused(bad):
    with pytest.raises(UserError, match="is not a node of lab 'lab'"):
        NAMES.node_index(bad)


def test_ownership_needs_both_the_lab_and_the_role_label():
    assert NAMES.is_ours(NAMES.labels("node", 1), "node")
    assert not NAMES.is_ours(NAMES.labels("node", 1), "registry")
    assert not NAMES.is_ours(LabNames("other").labels("node", 1), "node")
    assert not NAMES.is_ours({}, "node")
    assert not NAMES.is_ours(None, "node")
    assert NAMES.filters("node") == {"label": [f"{LAB_LABEL}=lab", f"{ROLE_LABEL}=node"]}


# --- addresses -----------------------------------------------------------------------------


def test_fixed_addresses_on_the_lab_bridge():
    assert ADDRESSES.gateway == "172.30.0.1"
    assert ADDRESSES.registry_address == "172.30.0.2:5000"
    assert [ADDRESSES.node(i) for i in (1, 2, 3)] == ["172.30.0.11", "172.30.0.12", "172.30.0.13"]
    assert ADDRESSES.docker_host(3) == "tcp://172.30.0.13:2375"


def test_the_first_free_subnet_is_chosen():
    taken = [ipaddress.ip_network(n) for n in ("172.17.0.0/16", "172.30.0.0/24", "172.30.1.0/25")]
    assert str(choose_subnet(taken).subnet) == "172.30.2.0/24"


def test_a_route_covering_every_candidate_leaves_no_subnet():
    with pytest.raises(UserError, match="pass a free one with --subnet"):
        choose_subnet([ipaddress.ip_network("172.16.0.0/12")])


@pytest.mark.parametrize(
    ("text", "message"), [("nonsense", "is not a subnet"), ("10.9.0.0/28", "too small")]
)
def test_a_bad_subnet_is_one_sentence(text, message):
    with pytest.raises(UserError, match=message):
        LabAddresses.parse(text)


# Recorded from this machine's /proc/net/route (the default route is not a subnet to avoid).
ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
docker_gwbridge\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""


def test_host_routes_are_read_from_the_kernel_table():
    assert [str(n) for n in parse_route_table(ROUTES)] == [
        "172.17.0.0/16",
        "172.18.0.0/16",
        "192.0.2.0/24",
    ]


# --- how a node runs -----------------------------------------------------------------------


def plan(shared_dir: Path | None = None) -> NodePlan:
    return NodePlan(NAMES, ADDRESSES, 2, "pretix-cluster/lab-node:abc", shared_dir)


def test_node_dockerd_listens_on_its_socket_and_its_bridge_address_only():
    args = plan().dockerd_args()
    assert "--host=unix:///var/run/docker.sock" in args
    assert "--host=tcp://172.30.0.12:2375" in args
    assert not any("0.0.0.0" in a for a in args)
    assert "--tls=false" in args  # explicit, or dockerd 20.10 sleeps 15 s to warn
    assert "--insecure-registry=172.30.0.2:5000" in args


def test_node_entrypoint_gets_the_gateway_and_port_before_dockerd_arguments():
    assert plan().command()[:3] == ["172.30.0.1", "2375", "--host=unix:///var/run/docker.sock"]


def test_node_container_follows_the_recipe():
    kwargs = plan().create_kwargs()
    assert (kwargs["name"], kwargs["hostname"], kwargs["network"]) == ("lab-2", "lab-2", "lab")
    assert kwargs["cap_add"] == ["ALL"] and kwargs["cap_drop"] == ["SYS_RESOURCE"]
    assert "privileged" not in kwargs  # fails in this sandbox: it asks for CAP_SYS_RESOURCE
    assert kwargs["security_opt"] == ["seccomp=unconfined", "apparmor=unconfined"]
    assert kwargs["tmpfs"] == {"/run": ""}
    assert kwargs["volumes"]["/sys/fs/cgroup"] == {"bind": "/sys/fs/cgroup", "mode": "rw"}
    assert kwargs["volumes"]["lab-2-disk"]["bind"] == "/var/lib/docker"
    assert kwargs["labels"] == NAMES.labels("node", 2)
    assert "restart_policy" not in kwargs  # a killed machine stays dead until `lab start`


def test_the_shared_directory_is_mounted_only_when_given(tmp_path):
    assert all(v["bind"] != NODE_SHARED_DIR for v in plan().create_kwargs()["volumes"].values())
    volumes = plan(tmp_path).create_kwargs()["volumes"]
    assert volumes[str(tmp_path)] == {"bind": NODE_SHARED_DIR, "mode": "rw"}


# `docker inspect lab-1` .Mounts, recorded from a lab made with --shared-dir /tmp/labshared.
NODE_MOUNTS = [
    {
        "Type": "bind",
        "Source": "/sys/fs/cgroup",
        "Destination": "/sys/fs/cgroup",
        "Mode": "rw",
        "RW": True,
        "Propagation": "rprivate",
    },
    {
        "Type": "volume",
        "Name": "lab-1-disk",
        "Source": "/var/lib/docker/volumes/lab-1-disk/_data",
        "Destination": "/var/lib/docker",
        "Driver": "local",
        "Mode": "rw",
        "RW": True,
        "Propagation": "",
    },
    {
        "Type": "bind",
        "Source": "/tmp/labshared",
        "Destination": "/srv/pretix-cluster-shared",
        "Mode": "rw",
        "RW": True,
        "Propagation": "rprivate",
    },
]


def test_the_shared_directory_of_an_existing_node_is_read_from_its_mounts():
    assert shared_dir_of({"Mounts": NODE_MOUNTS}) == "/tmp/labshared"
    assert shared_dir_of({"Mounts": NODE_MOUNTS[:2]}) is None


# --- the registry --------------------------------------------------------------------------


def test_registry_is_published_on_loopback_only_with_a_free_port():
    kwargs = create_kwargs(NAMES, "pretix-cluster/lab-registry:abc")
    assert kwargs["ports"] == {"5000/tcp": ("127.0.0.1", None)}
    assert kwargs["environment"] == {"REGISTRY_HTTP_ADDR": ":5000"}
    assert kwargs["volumes"] == {
        "lab-registry-data": {"bind": "/var/lib/docker-registry", "mode": "rw"}
    }
    assert (kwargs["name"], kwargs["network"]) == ("lab-registry", "lab")


@pytest.mark.parametrize(
    ("image", "name"),
    [
        (
            "pretix-cluster/pretix:0123456789ab",
            "172.30.0.2:5000/pretix-cluster/pretix:0123456789ab",
        ),
        ("debian:bookworm-slim", "172.30.0.2:5000/debian:bookworm-slim"),
        ("docker.io/library/redis:7", "172.30.0.2:5000/library/redis:7"),
        ("127.0.0.1:32768/pretix-cluster/etcd:abc", "172.30.0.2:5000/pretix-cluster/etcd:abc"),
        ("localhost/x:1", "172.30.0.2:5000/x:1"),
    ],
)
def test_a_pushed_image_keeps_its_path_and_content_hash_tag(image, name):
    assert qualified(image, "172.30.0.2:5000") == name


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("127.0.0.1:5000/a/b:tag", ("127.0.0.1:5000/a/b", "tag")),
        ("127.0.0.1:5000/a/b", ("127.0.0.1:5000/a/b", "latest")),
        ("a:1", ("a", "1")),
    ],
)
def test_push_names_split_at_the_tag_not_at_the_port(name, parts):
    assert split_tag(name) == parts


def test_registry_addresses_come_from_the_published_port():
    container = type(
        "C",
        (),
        {
            "name": "lab-registry",
            "attrs": {
                "NetworkSettings": {
                    "Ports": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}
                }
            },
        },
    )()
    assert Registry.from_container(container, ADDRESSES) == Registry(
        "172.30.0.2:5000", "127.0.0.1:32768"
    )


# --- images --------------------------------------------------------------------------------


def test_image_tags_hash_the_content(tmp_path):
    folder = tmp_path / "lab-node"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM x\n")
    args = {"BASE_IMAGE": "debian:bookworm-slim"}

    def tag(base_key: str = "debian", ca: bytes = b"") -> str:
        return build.directory_tag("lab-node", folder, base_key, ca, args)

    first = tag()
    assert first.startswith("pretix-cluster/lab-node:") and len(first.split(":")[1]) == 12
    assert tag() == first
    assert tag(base_key="ubuntu") != first
    assert tag(ca=b"another CA") != first
    (folder / "Dockerfile").write_text("FROM y\n")
    assert tag() != first


def test_node_dockerfile_pins_every_package():
    dockerfile = (images.LAB_DIR / "node-image" / "Dockerfile").read_text()
    for package in ("docker.io", "iptables", "iproute2", "ca-certificates", "procps"):
        assert f"{package}=${{" in dockerfile


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (control.LabSpec(nodes=2), "no majority that survives a loss"),
        (control.LabSpec(nodes=0), "at least one node"),
        (control.LabSpec(nodes=10), "at most 9 nodes"),
        (control.LabSpec(name="Lab"), "cannot name a lab"),
        (control.LabSpec(subnet="10.1.0.0/29"), "too small"),
        (control.LabSpec(shared_dir=Path("/nonexistent/shared")), "does not exist"),
    ],
)
def test_bad_lab_specs_are_refused_before_anything_is_made(spec, message):
    with pytest.raises(UserError, match=message):
        spec.validate()


@pytest.mark.parametrize("nodes", [1, 3, 5, 9])
def test_good_node_counts_pass(nodes):
    assert control.LabSpec(nodes=nodes).validate() == LabNames("lab")


def test_docker_not_running_is_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setattr(control, "HOST_DAEMON", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(UserError, match="Docker daemon is not reachable"):
        control.host_client()
