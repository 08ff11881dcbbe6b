"""The running test cluster: health, a real purchase, status and secrecy."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.loadtest.buyer import PurchaseResult, buy_ticket
from pretix_cluster.loadtest.pretixapi import PretixApi
from pretix_cluster.secrets import SECRET_NAMES

from .conftest import cli

pytestmark = pytest.mark.integration


def get_through_nginx(
    cluster: Cluster, path: str, timeout: float = 10, headers: dict[str, str] | None = None
) -> httpx.Response:
    """The published port on loopback, with the Host header pretix expects, verified TLS."""
    return send_through_nginx(cluster, "GET", path, timeout, headers=headers)


def send_through_nginx(
    cluster: Cluster, method: str, path: str, timeout: float = 60, **kw
) -> httpx.Response:
    """Any request through the edge, as get_through_nginx sends it."""
    headers = {"Host": cluster.spec.shop_netloc, **(kw.pop("headers", None) or {})}
    return httpx.request(
        method,
        cluster.spec.local_url() + path,
        headers=headers,
        timeout=timeout,
        verify=cluster.shop_trust().verify(),
        **kw,
    )


def test_healthcheck_is_200_through_nginx(cluster: Cluster):
    assert get_through_nginx(cluster, "/healthcheck/").status_code == 200


def test_static_files_are_served_by_nginx(cluster: Cluster):
    """Only nginx's /static/ location adds a year's expiry and the CORS header; pretix does not."""
    page = get_through_nginx(cluster, "/static/pretixbase/img/pretix-logo.svg")
    proxied = get_through_nginx(cluster, "/healthcheck/")
    assert page.status_code == 200
    assert "max-age=31536000" in page.headers.get("cache-control", "")
    assert page.headers.get("access-control-allow-origin") == "*"
    assert "access-control-allow-origin" not in proxied.headers
    assert get_through_nginx(cluster, "/static/staticfiles.json").status_code == 404


def buy(cluster: Cluster, buyer: str, timeout: float = 60) -> PurchaseResult:
    shop = cluster.shop_info()
    # The test spec's shop URL is the published port on 127.0.0.1.
    return buy_ticket(
        cluster.spec.cluster.url,
        shop["organizer"],
        shop["event"],
        shop["item_id"],
        email=f"{buyer}@example.org",
        name=f"Buyer {buyer}",
        timeout=timeout,
        verify=cluster.shop_trust().verify(),
    )


def test_a_ticket_bought_in_the_shop_is_an_order_in_the_api(cluster: Cluster):
    buyer = uuid.uuid4().hex[:10]
    result = buy(cluster, buyer)
    shop = cluster.shop_info()
    verify = cluster.shop_trust().verify()
    with PretixApi(
        cluster.spec.cluster.url, cluster.api_token(), shop["organizer"], verify=verify
    ) as api:
        order = api.order(shop["event"], result.order_code)
    assert order is not None
    assert order["email"] == f"{buyer}@example.org"
    assert [p["item"] for p in order["positions"]] == [shop["item_id"]]


def test_status_shows_the_spec_s_topology_healthy(cluster: Cluster, spec_file: Path):
    spec = cluster.spec
    status = cluster_status(spec_file)
    roles = sorted(m["role"] for m in status["patroni"])
    assert roles.count("leader") == 1
    replicas = [m for m in status["patroni"] if m["role"] != "leader"]
    assert len(replicas) == spec.postgres.nodes - 1
    assert all(m["state"] == "streaming" for m in replicas)
    sync = sum(1 for m in replicas if m["role"] == "sync_standby")
    assert sync == (1 if spec.postgres.synchronous else 0)
    redis_roles = sorted(r["role"] for r in status["redis"])
    assert redis_roles == ["master"] + ["replica"] * (spec.redis.nodes - 1)
    assert status["healthy"] is True


def replicas_in_spec(cluster: Cluster) -> dict[str, int]:
    """Every Swarm service of the cluster and the replicas the spec gives it (nginx: one per
    entry node, which `up` labels)."""
    spec = cluster.spec
    entry_nodes = [n for n in swarm.nodes(cluster.client) if n.is_entry(cluster.stack)]
    return {spec.service_name(node): 1 for node in spec.stateful_nodes} | {
        spec.service_name("web"): spec.web.replicas,
        spec.service_name("worker"): spec.worker.replicas,
        spec.service_name("cron"): 1,
        spec.service_name("nginx"): len(entry_nodes),
        spec.service_name("haproxy"): spec.haproxy.replicas,
    }


def test_every_service_runs_the_replicas_the_spec_asks_for(cluster: Cluster, spec_file: Path):
    expected = replicas_in_spec(cluster)
    services = cluster_status(spec_file)["services"]
    assert {s["name"]: s["desired"] for s in services} == expected
    assert {s["name"]: s["running"] for s in services} == expected


def cluster_status(spec_file: Path) -> dict:
    result = cli("status", "--json", spec_file=spec_file, check=False)
    return json.loads(result.stdout)


def test_no_secret_value_appears_in_docker_inspect(cluster: Cluster):
    # get, not ensure_all: a wrong state folder must fail here, not invent fresh values.
    values = {name: cluster.secrets.get(name) for name in SECRET_NAMES}
    values["api_token"] = cluster.api_token()
    if cluster.edge_pair is not None:
        values["tls_key"] = cluster.edge_pair.key_pem.decode()
    of_the_stack = {"label": f"com.docker.stack.namespace={cluster.stack}"}
    containers = [c.id for c in cluster.client.containers.list(filters=of_the_stack)]
    services = [s.id for s in cluster.client.services.list(filters=of_the_stack)]
    replicas = replicas_in_spec(cluster)
    assert len(services) == len(replicas)
    assert len(containers) >= sum(replicas.values())
    inspected = subprocess.run(
        ["docker", "inspect", *containers, *services], capture_output=True, text=True, check=True
    ).stdout
    for name, value in values.items():
        assert value not in inspected, name


PSQL_AS_SUPERUSER = ["psql", "-h", "/var/run/postgresql", "-U", "postgres", "-d", "pretix", "-tAc"]
# The roles of every connection to pretix's database but this query's own (a superuser's).
CONNECTED_ROLES = (
    "SELECT DISTINCT usename, rolsuper OR rolcreaterole OR rolcreatedb"
    " FROM pg_stat_activity JOIN pg_roles ON rolname = usename"
    " WHERE datname = 'pretix' AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def test_pretix_does_not_connect_as_a_superuser(cluster: Cluster, spec_file: Path):
    # A shop page opens pretix's connection to the primary; it is kept for a while.
    assert get_through_nginx(cluster, urlsplit(cluster.shop_info()["shop_url"]).path).is_success
    leader = next(m["name"] for m in cluster_status(spec_file)["patroni"] if m["role"] == "leader")
    code, output = swarm.exec_in_service(
        cluster.client,
        cluster.stack,
        leader,
        [*PSQL_AS_SUPERUSER, CONNECTED_ROLES],
    )
    assert code == 0, output
    assert output.split() == ["pretix|f"]


ADMIN_EMAIL = "admin@localhost"  # the backend user that `up` gives the generated password


def log_in(cluster: Cluster, password: str) -> tuple[httpx.Response, httpx.Response]:
    """Post pretix's backend login form; its answer, then /control/ in the same session."""
    url = cluster.spec.cluster.url
    with httpx.Client(base_url=url, timeout=20, verify=cluster.shop_trust().verify()) as client:
        form = client.get("/control/login")
        assert form.status_code == 200
        answer = client.post(
            "/control/login",
            data={
                "email": ADMIN_EMAIL,
                "password": password,
                "csrfmiddlewaretoken": csrf_cookie(client),
            },
            headers={"Referer": url + "/control/login"},
        )
        return answer, client.get("/control/")


def csrf_cookie(client: httpx.Client) -> str:
    """pretix's CSRF cookie; over HTTPS it is named __Host-pretix_csrftoken (secure only)."""
    secure = urlsplit(str(client.base_url)).scheme == "https"
    return client.cookies[("__Host-" if secure else "") + "pretix_csrftoken"]


def test_the_admin_logs_in_with_the_generated_password_and_not_the_default(cluster: Cluster):
    answer, backend = log_in(cluster, cluster.secrets.get("pretix_admin_password"))
    assert answer.status_code == 302, answer.text[-2000:]
    assert backend.status_code == 200
    answer, backend = log_in(cluster, "admin")  # pretix's own default
    assert answer.status_code == 200  # the form again, with an error: no redirect inward
    assert backend.status_code == 302
    assert backend.headers["location"].startswith("/control/login")


def api_list(cluster: Cluster, path: str) -> list[dict]:
    """Every result of a paginated pretix API list, e.g. "events/"."""
    shop = cluster.shop_info()
    headers = {"Authorization": f"Token {cluster.api_token()}"}
    url = f"{cluster.spec.cluster.url}/api/v1/organizers/{shop['organizer']}/{path}"
    results = []
    while url:
        page = httpx.get(url, headers=headers, timeout=20, verify=cluster.shop_trust().verify())
        page.raise_for_status()
        results += page.json()["results"]
        url = page.json()["next"]
    return results


def demo_objects(cluster: Cluster) -> dict[str, list[int | str]]:
    """The organizer's event slugs (load runs add theirs), the demo event's item and quota ids."""
    event = cluster.shop_info()["event"]
    return {
        "events": sorted(e["slug"] for e in api_list(cluster, "events/")),
        "items": sorted(i["id"] for i in api_list(cluster, f"events/{event}/items/")),
        "quotas": sorted(q["id"] for q in api_list(cluster, f"events/{event}/quotas/")),
    }


def test_up_again_converges_without_duplicating_the_demo(cluster: Cluster, spec_file: Path):
    shop = cluster.shop_info()
    before = demo_objects(cluster)
    assert shop["event"] in before["events"]
    assert before["items"] == [shop["item_id"]]
    assert before["quotas"] == [shop["quota_id"]]
    cli("up", spec_file=spec_file)
    assert cluster.shop_info() == shop
    assert demo_objects(cluster) == before
