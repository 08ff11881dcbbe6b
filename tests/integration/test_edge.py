"""The shop's edge on the running test cluster: TLS, the redirect, HSTS, the 503 page."""

from __future__ import annotations

import time

import httpx
import pytest

from pretix_cluster import status, swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons.nginx import RETRY_AFTER_S, UPSTREAM_STATUS_HEADER
from pretix_cluster.daemons.pretix import LIVE_PATH

from .test_cluster import get_through_nginx, send_through_nginx

pytestmark = pytest.mark.integration

RECOVERY_TIMEOUT_S = 180


@pytest.fixture
def tls_cluster(cluster: Cluster) -> Cluster:
    if not cluster.spec.tls_enabled:
        pytest.skip("the cluster's URL is http: no TLS at the edge")
    return cluster


def test_plain_http_is_redirected_to_the_shops_https_url(tls_cluster: Cluster):
    spec = tls_cluster.spec
    answer = httpx.get(f"http://127.0.0.1:{spec.nginx.http_port}/demo/?x=1", timeout=10)
    assert answer.status_code == 301
    assert answer.headers["location"] == f"{spec.cluster.url}/demo/?x=1"


def test_https_answers_carry_hsts(tls_cluster: Cluster):
    for path in ("/healthcheck/", "/static/pretixbase/img/pretix-logo.svg"):
        answer = get_through_nginx(tls_cluster, path)
        assert answer.headers["strict-transport-security"] == (
            f"max-age={tls_cluster.spec.tls.hsts_max_age}"
        ), path


def test_an_unverified_client_is_refused(tls_cluster: Cluster):
    """The certificate is the local CA's: only a client trusting that CA gets through."""
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_cluster.spec.local_url() + "/healthcheck/", timeout=10)


def test_the_liveness_path_is_not_served_at_the_edge(cluster: Cluster):
    assert get_through_nginx(cluster, LIVE_PATH).status_code == 404


def test_without_the_data_tier_buyers_get_the_503_page_and_api_clients_json(cluster: Cluster):
    """HAProxy gone (no database, no Redis for pretix): pretix's 500 becomes the edge's 503.

    API clients are authenticated (checking the token needs the database); the PATCH is
    the load test's own "go live" call: a named error location answered it 405 once.
    """
    haproxy = cluster.client.services.get(cluster.spec.service_name("haproxy"))
    shop_path = "/" + cluster.spec.shop.organizer + "/"
    event_path = f"/api/v1/organizers/{cluster.spec.shop.organizer}/events/"
    token = {"Authorization": f"Token {cluster.api_token()}"}
    haproxy.scale(0)
    try:
        # Until its containers are gone a stopping HAProxy still carries the connections it
        # has: a web process holding one would answer from the database.
        _wait_for(lambda: not swarm.running_containers(cluster.client, cluster.stack, "haproxy"))
        _wait_for(lambda: get_through_nginx(cluster, shop_path, 60).status_code == 503)
        page = get_through_nginx(cluster, shop_path, 60)
        api = get_through_nginx(cluster, event_path, 60, headers=token)
        patch = send_through_nginx(
            cluster, "PATCH", event_path + "tickets/", json={"live": True}, headers=token
        )
        health = get_through_nginx(cluster, "/healthcheck/", 60)
    finally:
        haproxy.reload()  # a stale version would be refused
        haproxy.scale(cluster.spec.haproxy.replicas)
        # Every HAProxy task's backends up, not one lucky 200: the next test buys.
        _wait_for(lambda: not status.collect(cluster).problems)
    assert page.headers["retry-after"] == str(RETRY_AFTER_S)
    assert page.headers["content-type"].startswith("text/html")
    assert f"try again in {RETRY_AFTER_S} seconds" in " ".join(page.text.split())
    for answer in (api, patch):
        assert answer.status_code == 503, answer.request.method
        assert answer.headers["retry-after"] == str(RETRY_AFTER_S)
        assert answer.json()["retry_after"] == RETRY_AFTER_S
        assert answer.headers[UPSTREAM_STATUS_HEADER] == "500"
    # pretix's own health answer passes unchanged: status and chaos read it.
    assert health.status_code != 200 and "retry-after" not in health.headers


def _wait_for(condition) -> None:
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {RECOVERY_TIMEOUT_S} s")
        time.sleep(1)
