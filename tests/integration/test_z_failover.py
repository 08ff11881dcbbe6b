"""Losing the PostgreSQL primary: a new primary serves and the shop sells again.

Runs last in the session (file name) because it disturbs the cluster; it
waits for the cluster to heal before it ends. The thorough suite is `chaos`.
"""

from __future__ import annotations

import json
import time

import pytest

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster

from .conftest import cli
from .test_cluster import buy

pytestmark = pytest.mark.integration

PURCHASE_DEADLINE_S = 60
HEAL_DEADLINE_S = 240


def patroni_members(cluster: Cluster) -> list[dict]:
    result = cli("status", "--json", spec_file=cluster.spec_dir / "cluster.toml", check=False)
    return json.loads(result.stdout)["patroni"]


def leader_of(cluster: Cluster) -> str:
    leaders = [m["name"] for m in patroni_members(cluster) if m["role"] == "leader"]
    assert len(leaders) == 1, leaders
    return leaders[0]


def test_killing_the_primary_a_purchase_succeeds_within_60_s(cluster: Cluster):
    buy(cluster)
    old_leader = leader_of(cluster)
    [container] = swarm.running_containers(cluster.client, cluster.stack, old_leader)
    container.kill()
    killed_at = time.monotonic()

    errors = []
    while time.monotonic() - killed_at < PURCHASE_DEADLINE_S:
        try:
            # Short per-request timeout: an attempt stuck in the outage must not
            # eat the whole deadline; the next attempt starts fresh.
            result = buy(cluster, timeout=10)
            break
        except Exception as exc:
            errors.append(f"{time.monotonic() - killed_at:.1f}s {type(exc).__name__}: {exc}")
            time.sleep(1)
    else:
        pytest.fail("no purchase succeeded within 60 s:\n" + "\n".join(errors[-5:]))
    assert result.order_code
    print(f"purchase after {time.monotonic() - killed_at:.1f} s, {len(errors)} failed attempts")

    healed = wait_until_healthy(cluster)
    assert healed, "the cluster did not become healthy again"
    members = patroni_members(cluster)
    assert any(
        m["name"] == old_leader and m["state"] in ("running", "streaming") for m in members
    ), members


def wait_until_healthy(cluster: Cluster) -> bool:
    deadline = time.monotonic() + HEAL_DEADLINE_S
    while time.monotonic() < deadline:
        if (
            cli(
                "status", "--json", spec_file=cluster.spec_dir / "cluster.toml", check=False
            ).returncode
            == 0
        ):
            return True
        time.sleep(5)
    return False
