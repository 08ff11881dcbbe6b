"""The cluster across three lab machines with `[images] registry = "managed"` (opt-in).

The tool runs Debian's docker-registry itself (stack <name>-registry on the
manager it talks to, TLS from its CA, a password), pushes the images there and
deploys the cluster from it; the lab runs the trust line on its machines. Then:
every service runs an image of that registry, no password shows in `docker
service inspect`, the registry wants the password and the CA, `registry trust
--json` lists the nodes, and a ticket bought through the lab's front is an order.

Not part of `make test` (a second full lab costs minutes): runs only with
PCTEST_MANAGED_REGISTRY=1, e.g.
`PCTEST_MANAGED_REGISTRY=1 pytest -m integration tests/lab/test_lab_registry.py`.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from pretix_cluster import swarm
from pretix_cluster.render import registry as render
from tests.commandline import cli
from tests.lab.deployed import deployed_lab
from tests.lab.test_lab_cluster import (  # the same purchase, against this lab
    lab_cluster,
    test_a_ticket_bought_through_the_front_is_an_order,  # noqa: F401
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("PCTEST_MANAGED_REGISTRY") != "1",
        reason="opt-in: PCTEST_MANAGED_REGISTRY=1 (a second three-machine lab)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".state" / "pcreg"
LAB = "pcreg"  # also the stack's name
PORT = 18590


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    with deployed_lab(LAB, PORT, STATE, {"images": {"registry": "managed"}}) as env:
        yield env


@pytest.fixture(scope="module")
def trust(lab_env) -> dict:
    return json.loads(cli("registry", "trust", "--json", env=lab_env).stdout)


@pytest.fixture(scope="module")
def password(lab_env) -> str:
    return lab_cluster(lab_env).secrets.get("registry_password")


def stack_services(lab_env) -> list:
    cluster = lab_cluster(lab_env)
    services = swarm.stack_services(cluster.client, cluster.stack)
    services += swarm.stack_services(cluster.client, render.stack_name(cluster.spec))
    return services


def test_registry_trust_lists_the_nodes_and_the_registry_on_the_manager(trust):
    assert sorted(n["hostname"] for n in trust["nodes"]) == [f"{LAB}-{i}" for i in (1, 2, 3)]
    assert trust["registry"] in {f"{n['address']}:5443" for n in trust["nodes"]}
    assert trust["command"].startswith(f"mkdir -p {render.CERTS_D}/{trust['registry']} ")


def test_every_service_runs_an_image_of_the_managed_registry(lab_env, trust):
    cluster = lab_cluster(lab_env)
    services = swarm.stack_services(cluster.client, cluster.stack)
    assert len(services) >= len(cluster.spec.stateful_nodes) + 5  # + web, worker, cron, ...
    for service in services:
        image = service.attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
        assert image.startswith(f"{trust['registry']}/pretix-cluster/"), (service.name, image)


def test_no_password_in_docker_service_inspect(lab_env, password):
    login = base64.b64encode(f"{render.USER}:{password}".encode()).decode()
    names = [s.name for s in stack_services(lab_env)]
    inspected = subprocess.run(
        ["docker", "service", "inspect", *names], env=lab_env, capture_output=True, text=True
    )
    assert inspected.returncode == 0, inspected.stderr
    assert len(json.loads(inspected.stdout)) == len(names)
    assert password not in inspected.stdout
    assert login not in inspected.stdout


def test_the_registry_wants_the_password(trust, password):
    url = f"https://{trust['registry']}/v2/"
    ca = ssl.create_default_context(cafile=trust["ca_file"])
    assert httpx.get(url, verify=ca, timeout=10).status_code == 401
    assert httpx.get(url, verify=ca, auth=(render.USER, "wrong"), timeout=10).status_code == 401
    assert httpx.get(url, verify=ca, auth=(render.USER, password), timeout=10).status_code == 200


def test_the_registry_refuses_tls_without_the_ca(trust):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://{trust['registry']}/v2/", timeout=10)
