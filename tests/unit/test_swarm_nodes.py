"""Reaching the daemon of the node a task runs on, the way DOCKER_HOST reaches the manager."""

import pytest

from pretix_cluster import swarm
from pretix_cluster.render.placement import Node
from pretix_cluster.swarm import node_endpoint

NODE = Node("id-2", "lab-2", True, address="172.30.0.12")


@pytest.mark.parametrize(
    ("manager", "expected"),
    [
        ("tcp://172.30.0.11:2375", "tcp://172.30.0.12:2375"),
        ("tcp://127.0.0.1", "tcp://172.30.0.12:2375"),
        ("ssh://ops@manager.example.org", "ssh://ops@lab-2"),
        ("ssh://manager.example.org:2222", "ssh://lab-2:2222"),
        ("unix:///var/run/docker.sock", None),
        ("", None),
    ],
)
def test_a_node_is_reached_like_the_manager(manager, expected):
    assert node_endpoint(manager, NODE) == expected


def test_a_global_service_without_tasks_yet_is_not_converged():
    # right after a deploy Swarm may not have made the global nginx's task yet
    assert swarm.wanted_tasks({"Global": {}}, 0) == 1
    assert swarm.wanted_tasks({"Global": {}}, 3) == 3
    assert swarm.wanted_tasks({"Replicated": {"Replicas": 2}}, 0) == 2
    assert swarm.wanted_tasks({"Replicated": {"Replicas": 0}}, 0) == 0
