"""The last ticket is never sold twice, even when a checkout lands inside a cart add's count.

pretix counts a quota's orders and its carts in two statements; a checkout turns
a cart position into an order without the quota's lock when the cart has time
left. If it commits between the two counts, the cart add misses that claim and
sells the ticket again: 11 orders on a quota of 10, seen twice in CI under the
oversell load test. The image's patch (images/pretix/patches/) makes the
checkout take the quota's lock shared right before its commit, so it waits for
a cart add in its count.

The probe (``quota_race_probe.py``) runs pretix's own cart and checkout code in
a pretix container against the cluster's PostgreSQL and puts the checkout into
that moment on purpose: a race that otherwise needs thousands of attempts
happens on every run.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.loadtest.pretixapi import PretixApi

pytestmark = pytest.mark.integration

PROBE = Path(__file__).with_name("quota_race_probe.py")
PYTHON = "/opt/pretix/venv/bin/python"
# The cart add's pause, under pretix's 3 s lock timeout so that a checkout
# waiting for the lock gets it once the pause ends.
HOLD_S = 1.5


def _event_with_one_ticket(cluster: Cluster) -> dict:
    shop = cluster.shop_info()
    slug = f"race{uuid.uuid4().hex[:8]}"
    with PretixApi(
        cluster.spec.cluster.url,
        cluster.api_token(),
        shop["organizer"],
        verify=cluster.shop_trust().verify(),
    ) as api:
        event = api.clone_event(
            shop["event"],
            slug,
            f"Quota race {slug}",
            quota_size=1,
            item_id=int(shop["item_id"]),
            quota_id=int(shop["quota_id"]),
        )
    return {"organizer": shop["organizer"], **event}


def _run_probe(cluster: Cluster, event: dict) -> dict:
    params = {
        "organizer": event["organizer"],
        "event": event["event"],
        "item_id": event["item_id"],
        "quota_id": event["quota_id"],
        "hold_s": HOLD_S,
    }
    script = f"PARAMS = {json.dumps(params)}\n" + PROBE.read_text()
    container = swarm.running_containers(cluster.client, cluster.stack, "worker")[0]
    rc, output = swarm.exec_in(container, [PYTHON, "-"], stdin=script, timeout=120)
    assert rc == 0, output[-3000:]
    return json.loads(output.strip().splitlines()[-1])


def test_a_checkout_inside_a_cart_adds_count_does_not_sell_the_last_ticket_twice(
    cluster: Cluster,
):
    seen = _run_probe(cluster, _event_with_one_ticket(cluster))
    shown = json.dumps(seen)
    print(shown)
    # the race was really run: the cart add paused inside its locked count,
    # and the checkout of the ticket's cart started during that pause
    assert seen["pause_inside_transaction"] is True, shown
    assert seen["checkout_started_inside_the_pause"] is True, shown
    assert seen["first_checkout"].startswith("order "), shown
    claims = seen["claims"]
    assert claims["orders"] + claims["carts"] <= claims["size"], shown
    assert seen["second_cart_add"].startswith("refused"), shown
