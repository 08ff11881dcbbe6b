"""The lab's swarm view, parsed from `docker node inspect` recorded on a real 3-node lab.

Recorded 2026-11-30 from `lab up` (healthy), and from lab-2 about 20 s after
`lab kill lab-1` (node1-killed). Trimmed of the engine's plugin list and the
swarm CA's certificate, which nothing reads.
"""

from __future__ import annotations

import pytest

from pretix_cluster.errors import UserError
from pretix_cluster.lab import membership
from pretix_cluster.lab.control import LabNode, LabStatus
from pretix_cluster.lab.membership import SwarmNode, manager_count

RECORDED = {
    "healthy": [
        {
            "ID": "5lyriuqhbvylbjky9a0zqsb8b",
            "Version": {"Index": 9},
            "CreatedAt": "2026-11-30T04:14:42.686880282Z",
            "UpdatedAt": "2026-11-30T04:14:43.573575483Z",
            "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
            "Description": {
                "Hostname": "lab-1",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 25276063744},
                "Engine": {"EngineVersion": "20.10.24+dfsg1"},
            },
            "Status": {"State": "ready", "Addr": "172.30.0.11"},
            "ManagerStatus": {
                "Leader": True,
                "Reachability": "reachable",
                "Addr": "172.30.0.11:2377",
            },
        },
        {
            "ID": "cz4ehbga3jtz5bv1f4exi8qlp",
            "Version": {"Index": 15},
            "CreatedAt": "2026-11-30T04:14:44.486122149Z",
            "UpdatedAt": "2026-11-30T04:14:45.265282226Z",
            "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
            "Description": {
                "Hostname": "lab-2",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 25276063744},
                "Engine": {"EngineVersion": "20.10.24+dfsg1"},
            },
            "Status": {"State": "ready", "Addr": "172.30.0.12"},
            "ManagerStatus": {"Reachability": "reachable", "Addr": "172.30.0.12:2377"},
        },
        {
            "ID": "6unztdcm6xklwozvtpu1526u7",
            "Version": {"Index": 21},
            "CreatedAt": "2026-11-30T04:14:46.610108293Z",
            "UpdatedAt": "2026-11-30T04:14:47.43014457Z",
            "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
            "Description": {
                "Hostname": "lab-3",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 25276063744},
                "Engine": {"EngineVersion": "20.10.24+dfsg1"},
            },
            "Status": {"State": "ready", "Addr": "172.30.0.13"},
            "ManagerStatus": {"Reachability": "reachable", "Addr": "172.30.0.13:2377"},
        },
    ],
    "node1-killed": [
        {
            "ID": "5lyriuqhbvylbjky9a0zqsb8b",
            "Version": {"Index": 30},
            "CreatedAt": "2026-11-30T04:14:42.686880282Z",
            "UpdatedAt": "2026-11-30T04:15:55.524917583Z",
            "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
            "Description": {
                "Hostname": "lab-1",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 25276063744},
                "Engine": {"EngineVersion": "20.10.24+dfsg1"},
            },
            "Status": {
                "State": "down",
                "Message": 'heartbeat failure for node in "unknown" state',
                "Addr": "172.30.0.11",
            },
            "ManagerStatus": {"Reachability": "unreachable", "Addr": "172.30.0.11:2377"},
        },
        {
            "ID": "cz4ehbga3jtz5bv1f4exi8qlp",
            "Version": {"Index": 29},
            "CreatedAt": "2026-11-30T04:14:44.486122149Z",
            "UpdatedAt": "2026-11-30T04:15:33.84150088Z",
            "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
            "Description": {
                "Hostname": "lab-2",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 25276063744},
                "Engine": {"EngineVersion": "20.10.24+dfsg1"},
            },
            "Status": {"State": "ready", "Addr": "172.30.0.12"},
            "ManagerStatus": {
                "Leader": True,
                "Reachability": "reachable",
                "Addr": "172.30.0.12:2377",
            },
        },
        {
            "ID": "6unztdcm6xklwozvtpu1526u7",
            "Version": {"Index": 28},
            "CreatedAt": "2026-11-30T04:14:46.610108293Z",
            "UpdatedAt": "2026-11-30T04:15:33.412142656Z",
            "Spec": {"Labels": {}, "Role": "manager", "Availability": "active"},
            "Description": {
                "Hostname": "lab-3",
                "Platform": {"Architecture": "x86_64", "OS": "linux"},
                "Resources": {"NanoCPUs": 2000000000, "MemoryBytes": 25276063744},
                "Engine": {"EngineVersion": "20.10.24+dfsg1"},
            },
            "Status": {"State": "ready", "Addr": "172.30.0.13"},
            "ManagerStatus": {"Reachability": "reachable", "Addr": "172.30.0.13:2377"},
        },
    ],
}


def parsed(case: str) -> dict[str, SwarmNode]:
    return {n.hostname: n for n in map(SwarmNode.from_inspect, RECORDED[case])}


def test_healthy_lab_has_three_ready_managers_and_one_leader():
    nodes = parsed("healthy")
    assert sorted(nodes) == ["lab-1", "lab-2", "lab-3"]
    assert all(n.role == "manager" and n.ready for n in nodes.values())
    assert [n.hostname for n in nodes.values() if n.leader] == ["lab-1"]
    assert nodes["lab-2"].reachability == "reachable"
    assert nodes["lab-3"].address == "172.30.0.13"


def test_killed_node_is_down_and_unreachable_and_the_leader_moved():
    nodes = parsed("node1-killed")
    dead = nodes["lab-1"]
    assert (dead.state, dead.reachability, dead.leader, dead.ready) == (
        "down",
        "unreachable",
        False,
        False,
    )
    assert [n.hostname for n in nodes.values() if n.leader] == ["lab-2"]
    assert nodes["lab-3"].ready


def test_a_worker_entry_has_no_manager_status():
    attrs = dict(RECORDED["healthy"][2], Spec={"Role": "worker", "Availability": "drain"})
    attrs.pop("ManagerStatus")
    worker = SwarmNode.from_inspect(attrs)
    assert (worker.role, worker.leader, worker.reachability, worker.ready) == (
        "worker",
        False,
        "",
        False,
    )


@pytest.mark.parametrize(
    ("nodes", "managers"), [(1, 1), (3, 3), (4, 3), (5, 5), (6, 5), (7, 7), (9, 7)]
)
def test_manager_count_is_the_largest_odd_count(nodes, managers):
    assert manager_count(nodes) == managers


def lab_from(case: str, containers: dict[str, str]) -> LabStatus:
    view = parsed(case)
    return LabStatus(
        name="lab",
        subnet="172.30.0.0/24",
        registry=None,
        nodes=[
            LabNode(
                i,
                f"lab-{i}",
                containers[f"lab-{i}"],
                f"172.30.0.1{i}",
                f"tcp://172.30.0.1{i}:2375",
                view.get(f"lab-{i}"),
            )
            for i in (1, 2, 3)
        ],
    )


def test_docker_host_is_the_leader_while_it_lives():
    lab = lab_from("healthy", {"lab-1": "running", "lab-2": "running", "lab-3": "running"})
    assert lab.docker_host == "tcp://172.30.0.11:2375"
    assert not lab.healthy  # no registry running


def test_docker_host_moves_to_the_new_leader_when_a_node_died():
    lab = lab_from("node1-killed", {"lab-1": "exited", "lab-2": "running", "lab-3": "running"})
    assert lab.docker_host == "tcp://172.30.0.12:2375"
    assert [n.ready for n in lab.nodes] == [False, True, True]


def test_docker_host_is_none_without_a_ready_manager():
    lab = lab_from("node1-killed", {"lab-1": "exited", "lab-2": "exited", "lab-3": "exited"})
    assert lab.docker_host is None


class FakeNodes:
    def __init__(self, views):
        self.views = list(views)

    def list(self):
        attrs = self.views.pop(0) if len(self.views) > 1 else self.views[0]
        return [type("Node", (), {"attrs": a})() for a in attrs]


class FakeManager:
    def __init__(self, *views):
        self.nodes = FakeNodes(views)


def test_wait_ready_waits_for_the_killed_node_to_come_back(monkeypatch):
    monkeypatch.setattr(membership.time, "sleep", lambda _: None)
    said = []
    manager = FakeManager(RECORDED["node1-killed"], RECORDED["healthy"])
    nodes = membership.wait_ready(manager, ["lab-1"], said.append)
    assert said == ["swarm: waiting for lab-1 to be Ready"]
    assert {n.hostname for n in nodes if n.ready} == {"lab-1", "lab-2", "lab-3"}


def test_wait_ready_gives_up_with_a_sentence(monkeypatch):
    monkeypatch.setattr(membership.time, "sleep", lambda _: None)
    manager = FakeManager(RECORDED["node1-killed"])
    with pytest.raises(UserError, match="lab-1 did not become Ready"):
        membership.wait_ready(manager, ["lab-1", "lab-2"], lambda _: None, timeout=0)


def test_docker_host_prefers_the_leader_over_a_lower_numbered_manager():
    # After `lab start lab-1`: lab-1 is back as a reachable manager, lab-2 stays the leader.
    back = dict(
        RECORDED["node1-killed"][0],
        Status={"State": "ready", "Addr": "172.30.0.11"},
        ManagerStatus={"Reachability": "reachable", "Addr": "172.30.0.11:2377"},
    )
    view = {
        n.hostname: n for n in map(SwarmNode.from_inspect, [back, *RECORDED["node1-killed"][1:]])
    }
    lab = LabStatus(
        name="lab",
        subnet="172.30.0.0/24",
        registry=None,
        nodes=[
            LabNode(
                i,
                f"lab-{i}",
                "running",
                f"172.30.0.1{i}",
                f"tcp://172.30.0.1{i}:2375",
                view[f"lab-{i}"],
            )
            for i in (1, 2, 3)
        ],
    )
    assert all(n.ready for n in lab.nodes)
    assert lab.docker_host == "tcp://172.30.0.12:2375"


def test_an_old_entry_of_a_node_that_came_back_on_a_fresh_disk_is_stale():
    # lab-3 lost its disk and joined again under a new ID; its old entry may still say Ready.
    old = parsed("healthy")
    rejoined = SwarmNode.from_inspect(dict(RECORDED["healthy"][2], ID="rbbqg62326itoxmna5rnkrg2s"))
    live = [old["lab-1"].id, old["lab-2"].id, rejoined.id]
    stale = membership.stale_entries([*old.values(), rejoined], live)
    assert [(n.hostname, n.id) for n in stale] == [("lab-3", old["lab-3"].id)]


def test_entries_of_other_machines_are_never_stale():
    nodes = list(parsed("node1-killed").values())
    assert membership.stale_entries(nodes, [nodes[1].id, nodes[2].id]) == []
