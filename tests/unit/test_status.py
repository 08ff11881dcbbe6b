"""`status`'s verdict and its JSON, from the recorded daemon outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pretix_cluster import status, swarm
from pretix_cluster.daemons import etcd, haproxy, patroni, pretix, redis
from pretix_cluster.spec import parse_spec

FIXTURES = Path(__file__).parents[1] / "fixtures"
SPEC = parse_spec({})  # the recorded cluster ran the defaults


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def recorded_status(**change: object) -> status.Status:
    """The healthy cluster as recorded, with ``change``'s layers replaced."""
    services = json.loads(fixture("swarm/services.json"))
    running = swarm.running_per_service(
        [swarm.Task.from_api(t) for t in json.loads(fixture("swarm/tasks.json"))],
        {s["ID"]: s["Spec"]["Name"] for s in services},
    )
    layers: dict[str, object] = {
        "service_states": tuple(
            swarm.ServiceState(name, "?", count, count, "") for name, count in running.items()
        ),
        "etcd_members": etcd.EndpointHealth.from_etcdctl_json(fixture("etcd/endpoint_health.txt")),
        "cluster_view": patroni.ClusterView.from_cluster_json(fixture("patroni/cluster.json")),
        "sentinel": redis.SentinelView.from_redis_cli(
            fixture("redis/sentinel_master_replicas.txt")
        ),
        "haproxies": tuple(
            haproxy.HaproxyView(
                str(i), haproxy.BackendServer.from_show_stat(fixture(f"haproxy/show_stat_{i}.csv"))
            )
            for i in (1, 2)
        ),
        "health": pretix.HealthCheck("http://127.0.0.1:8080/healthcheck/", status=200),
    }
    return status.Status(**(layers | change))


def test_the_recorded_cluster_is_healthy():
    assert status.problems(recorded_status(), SPEC) == []


def test_a_degraded_layer_is_named():
    view = patroni.ClusterView.from_cluster_json(fixture("patroni/cluster_derived_no_leader.json"))
    sentinel = redis.SentinelView.from_redis_cli(
        fixture("redis/sentinel_derived_replica_link_down.txt")
    )
    two_masters = haproxy.HaproxyView(
        "1",
        haproxy.BackendServer.from_show_stat(
            fixture("haproxy/show_stat_1_derived_two_redis_masters.csv")
        ),
    )
    members = etcd.EndpointHealth.from_etcdctl_json(
        fixture("etcd/endpoint_health_derived_one_down.txt")
    )
    degraded = recorded_status(
        cluster_view=view,
        sentinel=sentinel,
        haproxies=(two_masters,),
        etcd_members=members,
        silent_haproxies=("pretix_haproxy.2.x",),
        health=pretix.HealthCheck("http://127.0.0.1:8080/healthcheck/", status=503),
    )
    assert status.problems(degraded, SPEC) == [
        "etcd has 2 healthy members, expected 3",
        "PostgreSQL has 0 running leaders, expected 1",
        "Redis has 1 healthy replicas, expected 2",
        "HAProxy pretix_haproxy.2.x does not answer",
        "HAProxy backend redis has 2 servers UP, expected 1",
        "pretix /healthcheck/ through nginx: "
        "{'url': 'http://127.0.0.1:8080/healthcheck/', 'status': 503}",
    ]


@pytest.mark.parametrize(
    ("layer", "problem"),
    [
        ("etcd_members", "no etcd member answers"),
        ("cluster_view", "no Patroni node answers"),
        ("sentinel", "no Sentinel answers"),
    ],
)
def test_a_silent_layer_is_a_problem(layer, problem):
    assert status.problems(recorded_status(**{layer: None}), SPEC) == [problem]


def test_a_service_short_of_tasks_is_a_problem():
    healthy = recorded_status()
    web = dataclasses.replace(
        next(s for s in healthy.service_states if s.name == "pretix_web"), running=1
    )
    others = tuple(s for s in healthy.service_states if s.name != "pretix_web")
    problems = status.problems(recorded_status(service_states=(web, *others)), SPEC)
    assert problems == ["pretix_web: 1/2 running"]


def test_json_keeps_the_keys_and_rows_of_status_json():
    result = recorded_status()
    result = dataclasses.replace(result, problems=tuple(status.problems(result, SPEC)))
    data = json.loads(json.dumps(result.as_dict()))
    assert list(data) == [
        "services",
        "etcd",
        "patroni",
        "redis",
        "haproxy",
        "waiting_room",
        "healthcheck",
        "problems",
        "healthy",
    ]
    assert data["healthy"] is True and data["problems"] == []
    assert {"name": "pretix_web", "running": 2, "desired": 2, "healthy": True}.items() <= (
        next(s for s in data["services"] if s["name"] == "pretix_web").items()
    )
    assert sorted(m["endpoint"] for m in data["etcd"])[0] == "http://etcd-1:2379"
    assert data["etcd"][0].keys() == {"endpoint", "healthy"}
    leader = next(m for m in data["patroni"] if m["role"] == "leader")
    assert leader == {
        "name": "pg-3",
        "role": "leader",
        "state": "running",
        "lag": None,
        "timeline": 1,
        "host": "pg-3",
    }
    assert data["redis"][0] == {"name": "redis-1", "role": "master", "flags": "master", "link": "-"}
    assert data["redis"][1] == {
        "name": "redis-2",
        "role": "replica",
        "flags": "slave",
        "link": "ok",
    }
    assert len(data["haproxy"]) == 18
    assert data["haproxy"][0] == {
        "haproxy": "1",
        "backend": "pg_primary",
        "server": "pg-1",
        "status": "DOWN",
    }
    assert data["healthcheck"] == {"url": "http://127.0.0.1:8080/healthcheck/", "status": 200}
