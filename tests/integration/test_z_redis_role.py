"""All Redis nodes killed at once: they come back with one master and the data.

Runs after the chaos tests (file name) because it disturbs the cluster. Every
node restarts with data on its volume, so none may take the master role by list
order: redis-role (images/redis/role.py) follows the Sentinels' majority, which
still names the master of before the kill. About 40 s.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons.redis import PASSWORD_SECRET
from pretix_cluster.errors import UserError
from pretix_cluster.spec import PORTS

from .conftest import cli

pytestmark = pytest.mark.integration

RETURN_TIMEOUT_S = 180
POLL_S = 3
AOF_FSYNC_S = 2  # appendfsync everysec: the write is on every node's disk after this


def redis_cli(cluster: Cluster, member: str, port: int, *command: str) -> str | None:
    """redis-cli in `member`'s container, the password on its stdin; None if not running."""
    line = " ".join(command)
    try:
        code, out = swarm.exec_in_service(
            cluster.client,
            cluster.stack,
            member,
            ["sh", "-c", f"redis-cli --askpass -p {port} {line} < {PASSWORD_SECRET}"],
            timeout=10,
        )
    except (UserError, subprocess.TimeoutExpired):  # between the kill and the restart
        return None
    return out.strip() if code == 0 else None


def roles(cluster: Cluster) -> dict[str, str | None]:
    """Each Redis node's ROLE (first line), None while it does not answer."""
    found = {}
    for node in cluster.spec.redis_nodes:
        answer = redis_cli(cluster, node, PORTS.redis, "ROLE")
        found[node] = answer.splitlines()[0] if answer else None
    return found


def test_all_redis_nodes_killed_at_once_return_with_one_master_and_the_data(
    cluster: Cluster, spec_file: Path
):
    spec = cluster.spec
    master_addr = redis_cli(
        cluster,
        spec.sentinel_nodes[0],
        PORTS.sentinel,
        "SENTINEL get-master-addr-by-name",
        spec.redis.master_name,
    )
    master = master_addr.splitlines()[0]
    key, value = f"redis-role-test:{uuid.uuid4().hex}", uuid.uuid4().hex
    assert redis_cli(cluster, master, PORTS.redis, "SET", key, value) == "OK"
    replicas = len(spec.redis_nodes) - 1
    assert int(redis_cli(cluster, master, PORTS.redis, "WAIT", str(replicas), "5000")) == replicas
    time.sleep(AOF_FSYNC_S)

    for node in spec.redis_nodes:
        for container in swarm.running_containers(cluster.client, cluster.stack, node):
            container.kill()

    deadline = time.monotonic() + RETURN_TIMEOUT_S
    seen = roles(cluster)
    while None in seen.values() and time.monotonic() < deadline:
        time.sleep(POLL_S)
        seen = roles(cluster)
    assert sorted(seen.values(), key=str) == ["master"] + ["slave"] * replicas, seen
    for node in spec.redis_nodes:
        assert redis_cli(cluster, node, PORTS.redis, "GET", key) == value, node

    while cli("status", spec_file=spec_file, check=False).returncode != 0:
        assert time.monotonic() < deadline, "status did not turn healthy"
        time.sleep(POLL_S)
