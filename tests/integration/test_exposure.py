"""Only the shop's ports are published, and what stays inside wants a login.

Cheap (a few seconds): Docker's view of the stack's services, a connect to each
internal port on the host's loopback, and one unauthenticated request to etcd,
Redis and a Sentinel from inside their own containers.
"""

from __future__ import annotations

import dataclasses
import socket

import pytest

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons import etcd
from pretix_cluster.spec import PORTS

pytestmark = pytest.mark.integration


def shop_ports(cluster: Cluster) -> set[int]:
    """The ports the spec publishes for buyers (an HTTP port next to HTTPS, when it has one)."""
    nginx = cluster.spec.nginx
    return {nginx.port} | ({nginx.http_port} if getattr(nginx, "http_port", 0) else set())


def published_ports(cluster: Cluster) -> set[int]:
    found = set()
    for service in swarm.stack_services(cluster.client, cluster.stack):
        for port in service.attrs["Spec"].get("EndpointSpec", {}).get("Ports", []):
            found.add(port["PublishedPort"])
    return found


def answers_on_loopback(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run_in(cluster: Cluster, service: str, command: list[str]) -> str:
    container = swarm.running_containers(cluster.client, cluster.stack, service)[0]
    return swarm.exec_in(container, command, timeout=30)[1]


def test_only_the_shop_ports_are_published(cluster: Cluster):
    assert published_ports(cluster) == shop_ports(cluster)


def test_no_internal_port_answers_on_the_host(cluster: Cluster):
    internal = {p for p in dataclasses.asdict(PORTS).values() if p not in shop_ports(cluster)}
    assert [p for p in sorted(internal) if answers_on_loopback(p)] == []


def test_etcd_refuses_a_request_without_credentials(cluster: Cluster):
    member = cluster.spec.etcd_members[0]
    assert etcd.auth_enabled(run_in(cluster, member, etcd.auth_probe_command(PORTS.etcd_client)))


def test_redis_and_sentinel_refuse_a_client_without_password(cluster: Cluster):
    redis_node, sentinel = cluster.spec.redis_nodes[0], cluster.spec.sentinel_nodes[0]
    assert "NOAUTH" in run_in(cluster, redis_node, ["redis-cli", "-p", str(PORTS.redis), "ping"])
    assert "NOAUTH" in run_in(cluster, sentinel, ["redis-cli", "-p", str(PORTS.sentinel), "ping"])
