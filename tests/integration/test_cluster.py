"""The running test cluster: health, a real purchase, status and secrecy."""

from __future__ import annotations

import json
import subprocess
import uuid

import httpx
import pytest

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.loadtest.buyer import PurchaseResult, buy_ticket
from pretix_cluster.loadtest.pretixapi import PretixApi

from .conftest import cli

pytestmark = pytest.mark.integration


def get_through_nginx(cluster: Cluster, path: str) -> httpx.Response:
    """The published port on loopback, with the Host header pretix expects."""
    return httpx.get(
        cluster.spec.local_url() + path, headers={"Host": cluster.spec.shop_netloc}, timeout=10
    )


def test_healthcheck_is_200_through_nginx(cluster: Cluster):
    assert get_through_nginx(cluster, "/healthcheck/").status_code == 200


def test_static_files_are_served_by_nginx(cluster: Cluster):
    page = get_through_nginx(cluster, "/static/pretixbase/img/pretix-logo.svg")
    assert page.status_code == 200
    assert "gunicorn" not in page.headers.get("server", "").lower()


def buy(cluster: Cluster, timeout: float = 60) -> PurchaseResult:
    shop = cluster.shop_info()
    buyer = uuid.uuid4().hex[:10]
    # The test spec's shop URL is the published port on 127.0.0.1.
    return buy_ticket(
        cluster.spec.cluster.url,
        shop["organizer"],
        shop["event"],
        shop["item_id"],
        email=f"{buyer}@example.org",
        name=f"Buyer {buyer}",
        timeout=timeout,
    )


def test_a_ticket_bought_in_the_shop_is_an_order_in_the_api(cluster: Cluster):
    result = buy(cluster)
    shop = cluster.shop_info()
    with PretixApi(cluster.spec.cluster.url, cluster.api_token(), shop["organizer"]) as api:
        order = api.order(shop["event"], result.order_code)
    assert order is not None
    assert order["code"] == result.order_code
    assert [p["item"] for p in order["positions"]] == [shop["item_id"]]


def test_status_shows_one_leader_two_streaming_replicas_and_one_redis_master(cluster: Cluster):
    status = cluster_status(cluster)
    roles = sorted(m["role"] for m in status["patroni"])
    assert roles.count("leader") == 1
    replicas = [m for m in status["patroni"] if m["role"] != "leader"]
    assert len(replicas) == 2
    assert all(m["state"] == "streaming" for m in replicas)
    assert sum(1 for m in replicas if m["role"] == "sync_standby") == 1
    redis_roles = sorted(r["role"] for r in status["redis"])
    assert redis_roles == ["master", "replica", "replica"]
    assert status["healthy"] is True


def cluster_status(cluster: Cluster) -> dict:
    result = cli("status", "--json", spec_file=cluster.spec_dir / "cluster.toml", check=False)
    return json.loads(result.stdout)


def test_no_secret_value_appears_in_docker_inspect(cluster: Cluster):
    values = cluster.secrets.ensure_all()
    values["api_token"] = cluster.api_token()
    client = cluster.client
    ids = [
        c.id
        for c in client.containers.list(
            filters={"label": f"com.docker.stack.namespace={cluster.stack}"}
        )
    ]
    ids += [
        s.id
        for s in client.services.list(
            filters={"label": f"com.docker.stack.namespace={cluster.stack}"}
        )
    ]
    assert len(ids) > 20
    inspected = subprocess.run(
        ["docker", "inspect", *ids], capture_output=True, text=True, check=True
    ).stdout
    for name, value in values.items():
        assert value not in inspected, name


def test_pretix_does_not_connect_as_a_superuser(cluster: Cluster):
    leader = next(m["name"] for m in cluster_status(cluster)["patroni"] if m["role"] == "leader")
    query = "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname='pretix'"
    code, output = swarm.exec_in_service(
        cluster.client,
        cluster.stack,
        leader,
        ["psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "pretix", "-tAc", query],
    )
    assert code == 0, output
    assert output.strip() == "f"


def test_pretix_admin_default_password_is_replaced(cluster: Cluster):
    login = cluster.spec.cluster.url + "/control/login"
    with httpx.Client(timeout=20) as client:
        page = client.get(login)
        token = client.cookies.get("pretix_csrftoken") or client.cookies.get("csrftoken")
        response = client.post(
            login,
            data={"email": "admin@localhost", "password": "admin", "csrfmiddlewaretoken": token},
            headers={"Referer": login},
        )
    assert page.status_code == 200
    assert response.status_code == 200  # the form again, with an error: no redirect inward


def test_up_again_converges_without_duplicating_the_demo(cluster: Cluster):
    before = cluster.shop_info()
    cli("up", spec_file=cluster.spec_dir / "cluster.toml")
    assert cluster.shop_info() == before
    api = f"{cluster.spec.cluster.url}/api/v1/organizers"
    headers = {"Authorization": f"Token {cluster.api_token()}"}
    events = httpx.get(f"{api}/{before['organizer']}/events/", headers=headers, timeout=20)
    items = httpx.get(
        f"{api}/{before['organizer']}/events/{before['event']}/items/", headers=headers, timeout=20
    )
    assert events.json()["count"] == 1
    assert items.json()["count"] == 1
