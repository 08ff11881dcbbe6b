"""A real 3-node lab: a swarm of three managers that loses a machine and gets it back.

Uses its own lab name, so an operator's lab on the same machine is never touched,
and always ends with `lab down --purge`. The machines only (`--no-cluster`):
test_lab_cluster.py deploys the cluster across a lab.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import docker
import pytest

from pretix_cluster.lab import control
from tests.commandline import cli

pytestmark = pytest.mark.integration

LAB = "pctestlab"
SMALL_IMAGE = "debian:bookworm-slim"


def lab(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return cli("lab", *args, "--name", LAB, check=check, timeout=900)


def lab_json(*args: str) -> dict:
    return json.loads(lab(*args, "--json").stdout)


def docker_on(docker_host: str, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DOCKER_HOST": docker_host}
    return subprocess.run(
        ["docker", *args], env=env, capture_output=True, text=True, timeout=300, check=True
    )


def by_name(status: dict) -> dict[str, dict]:
    return {node["name"]: node for node in status["nodes"]}


def wait_for(condition, timeout: float, what: str) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(lab("status", "--json", check=False).stdout)
        if condition(status):
            return status
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout:.0f} s; last status: {status}")


@pytest.fixture(scope="module")
def lab_up() -> dict:
    status = lab_json("up", "--nodes", "3", "--no-cluster")
    yield status
    lab("down", "--purge", check=False)


def test_three_ready_managers_with_one_leader(lab_up):
    nodes = by_name(lab_up)
    assert sorted(nodes) == [f"{LAB}-1", f"{LAB}-2", f"{LAB}-3"]
    assert all(
        n["swarm"]["role"] == "manager" and n["swarm"]["state"] == "ready" for n in nodes.values()
    )
    assert sum(n["swarm"]["leader"] for n in nodes.values()) == 1
    assert lab_up["healthy"]


def test_a_second_up_repairs_nothing_and_duplicates_nothing(lab_up):
    again = lab_json("up", "--nodes", "3", "--no-cluster")
    assert [n["swarm"]["id"] for n in again["nodes"]] == [n["swarm"]["id"] for n in lab_up["nodes"]]
    host = docker.DockerClient(base_url=control.HOST_DAEMON)
    ours = host.containers.list(all=True, filters={"label": f"pretix-cluster.lab={LAB}"})
    assert len(ours) == 4  # three nodes and the registry


def test_the_docker_cli_reaches_the_lab_through_docker_host(lab_up):
    exported = lab("env").stdout.strip()
    assert exported == f"export DOCKER_HOST={lab_up['docker_host']}"
    listing = docker_on(
        lab_up["docker_host"], "node", "ls", "--format", "{{.Hostname}} {{.Status}}"
    )
    assert sorted(listing.stdout.split("\n")[:-1]) == [f"{LAB}-{i} Ready" for i in (1, 2, 3)]


def test_an_image_pushed_through_the_registry_runs_on_node_3(lab_up):
    node3 = by_name(lab_up)[f"{LAB}-3"]["docker_host"]
    pushed = control.push_images(LAB, [SMALL_IMAGE], lambda _: None)
    name = pushed[SMALL_IMAGE]
    assert name == f"{lab_up['registry']['address']}/{SMALL_IMAGE}"
    before = docker_on(node3, "images", "-q", name).stdout.strip()
    assert before == ""  # so the run below must pull it from the registry
    ran = docker_on(node3, "run", "--rm", name, "cat", "/etc/debian_version")
    assert ran.stdout.strip().startswith("12.")


def test_the_swarm_keeps_a_leader_when_node_1_dies_and_takes_it_back(lab_up):
    first = f"{LAB}-1"
    lab("kill", first)

    def down_with_new_leader(status: dict) -> bool:
        nodes = by_name(status)
        dead = nodes[first]["swarm"]
        others = [n["swarm"] for name, n in nodes.items() if name != first]
        return (
            nodes[first]["container"] == "exited"
            and dead is not None
            and dead["state"] == "down"
            and any(s and s["leader"] and s["state"] == "ready" for s in others)
        )

    status = wait_for(down_with_new_leader, 90, f"{first} down and another leader")
    assert status["docker_host"] != by_name(status)[first]["docker_host"]

    lab("start", first)
    status = wait_for(lambda s: s["healthy"], 60, "the whole lab Ready again")
    assert by_name(status)[first]["swarm"]["role"] == "manager"


def test_unknown_node_is_one_sentence(lab_up):
    result = lab("kill", f"{LAB}-7", check=False)
    assert result.returncode == 2
    assert "has no node" in result.stderr and "Traceback" not in result.stderr


def test_down_purge_leaves_nothing(lab_up):
    lab("down", "--purge")
    host = docker.DockerClient(base_url=control.HOST_DAEMON)
    label = {"label": f"pretix-cluster.lab={LAB}"}
    assert host.containers.list(all=True, filters=label) == []
    assert host.volumes.list(filters=label) == []
    assert host.networks.list(filters=label) == []
