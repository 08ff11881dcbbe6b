"""Each daemon's parser, on outputs recorded from a real cluster (tests/fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretix_cluster import swarm
from pretix_cluster.daemons import etcd, haproxy, patroni, pretix, redis

FIXTURES = Path(__file__).parents[1] / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- Patroni ---------------------------------------------------------------------------


def test_patroni_cluster_names_leader_sync_standby_and_replica():
    view = patroni.ClusterView.from_cluster_json(fixture("patroni/cluster.json"))
    assert [m.name for m in view.members] == ["pg-1", "pg-2", "pg-3"]
    assert view.leader == patroni.Member("pg-3", "leader", "running", None, 1, "pg-3")
    assert [m.name for m in view.sync_standbys] == ["pg-1"]
    pg2 = view.member("pg-2")
    assert pg2 is not None and (pg2.role, pg2.state, pg2.lag) == ("replica", "streaming", 0)
    assert view.member("pg-4") is None
    assert all(m.serving and m.live for m in view.members)
    assert [m.name for m in view.members if m.streaming_replica] == ["pg-1", "pg-2"]
    assert view.problems(nodes=3, synchronous=True) == []


def test_a_stopped_leader_is_still_named_but_not_running():
    view = patroni.ClusterView.from_cluster_json(
        fixture("patroni/cluster_derived_leader_stopped.json")
    )
    assert view.leader is not None and view.leader.name == "pg-3"
    assert not view.leader.running_leader and not view.leader.serving and not view.leader.live
    assert view.problems(nodes=3, synchronous=True) == [
        "PostgreSQL has 0 running leaders, expected 1"
    ]


def test_no_leader():
    view = patroni.ClusterView.from_cluster_json(fixture("patroni/cluster_derived_no_leader.json"))
    assert view.leader is None and view.leaders == ()
    assert view.problems(nodes=3, synchronous=True) == [
        "PostgreSQL has 0 running leaders, expected 1"
    ]
    # Four nodes expected: one replica missing as well.
    assert "PostgreSQL has 2 streaming replicas, expected 3" in view.problems(4, True)


def test_two_leaders_are_no_leader():
    data = json.loads(fixture("patroni/cluster.json"))
    data["members"][1] |= {"role": "leader", "state": "running"}  # pg-2 claims it too
    view = patroni.ClusterView.from_cluster_json(json.dumps(data))
    assert [m.name for m in view.leaders] == ["pg-2", "pg-3"] and view.leader is None
    assert view.problems(3, True)[0] == "PostgreSQL has 2 running leaders, expected 1"


def test_a_missing_sync_standby_matters_only_in_synchronous_mode():
    data = json.loads(fixture("patroni/cluster.json"))
    for m in data["members"]:
        m["role"] = "replica" if m["role"] == "sync_standby" else m["role"]
    view = patroni.ClusterView.from_cluster_json(json.dumps(data))
    assert view.problems(3, synchronous=True) == ["PostgreSQL has no synchronous standby"]
    assert view.problems(3, synchronous=False) == []


def test_patroni_view_survives_its_json():
    view = patroni.ClusterView.from_cluster_json(fixture("patroni/cluster.json"))
    assert patroni.ClusterView.from_json(json.loads(json.dumps(view.to_json()))) == view


def test_patroni_probe_asks_nodes_in_order_and_parses_the_answer():
    asked = []

    def exec_(services, command, timeout):
        asked.append((list(services), command[:2], timeout))
        return fixture("patroni/cluster.json")

    view = patroni.probe(exec_, ["pg-2", "pg-1"], 8008, 4.0)
    assert view is not None and view.leader is not None and view.leader.name == "pg-3"
    assert asked == [(["pg-2", "pg-1"], ["python3", "-c"], 4.0)]
    assert patroni.probe(lambda *_: None, ["pg-1"], 8008, 4.0) is None


# --- etcd ------------------------------------------------------------------------------


def test_etcd_health_of_every_member():
    members = etcd.EndpointHealth.from_etcdctl_json(fixture("etcd/endpoint_health.txt"))
    assert members is not None
    assert sorted(m.endpoint for m in members) == [
        "http://etcd-1:2379",
        "http://etcd-2:2379",
        "http://etcd-3:2379",
    ]
    assert all(m.healthy for m in members)
    assert etcd.health_problems(members, 3) == []


def test_an_unhealthy_etcd_member_is_a_problem():
    text = fixture("etcd/endpoint_health_derived_one_down.txt")
    members = etcd.EndpointHealth.from_etcdctl_json("a warning etcdctl printed first\n" + text)
    assert members is not None
    down = [m for m in members if not m.healthy]
    assert [(m.endpoint, m.error) for m in down] == [
        ("http://etcd-3:2379", "context deadline exceeded")
    ]
    assert etcd.health_problems(members, 3) == ["etcd has 2 healthy members, expected 3"]
    assert etcd.EndpointHealth.from_etcdctl_json("Error: context deadline exceeded") is None


def test_etcd_leader_from_recorded_endpoint_status():
    statuses = etcd.EndpointStatus.from_etcdctl_json(fixture("etcd/endpoint_status.txt"))
    assert [s.host for s in statuses if s.is_leader] == ["etcd-3"]
    assert etcd.leader_of(statuses, ["etcd-1", "etcd-2", "etcd-3"]) == "etcd-3"
    assert etcd.leader_of(statuses, ["etcd-1", "etcd-2"]) is None  # not a member of the spec
    followers = [s for s in statuses if not s.is_leader]
    assert etcd.leader_of(followers, ["etcd-1", "etcd-2", "etcd-3"]) is None


# --- Redis / Sentinel ------------------------------------------------------------------


def test_sentinel_master_and_healthy_replicas():
    view = redis.SentinelView.from_redis_cli(fixture("redis/sentinel_master_replicas.txt"))
    assert view is not None
    assert view.master == redis.RedisNode("redis-1", "master", None)
    assert view.replicas == (
        redis.RedisNode("redis-2", "slave", "ok"),
        redis.RedisNode("redis-3", "slave", "ok"),
    )
    assert not view.master_down and view.master.clean
    assert [r.name for r in view.healthy_replicas] == ["redis-2", "redis-3"]
    assert view.replica("redis-3") == view.replicas[1] and view.replica("redis-1") is None
    assert view.problems(3) == []


def test_a_replica_with_its_link_down_is_not_healthy():
    text = fixture("redis/sentinel_derived_replica_link_down.txt")
    view = redis.SentinelView.from_redis_cli(text)
    assert view is not None
    bad = view.replica("redis-3")
    assert bad == redis.RedisNode("redis-3", "s_down,slave,disconnected", "err")
    assert bad.down and not bad.clean and not bad.healthy_replica
    assert [r.name for r in view.healthy_replicas] == ["redis-2"]
    assert view.problems(3) == ["Redis has 1 healthy replicas, expected 2"]


def test_a_replica_sentinel_trusts_but_whose_link_is_down_is_not_healthy():
    # Right after a failover a replica still has flags "slave" while it resyncs.
    text = fixture("redis/sentinel_master_replicas.txt")
    head, sep, tail = text.partition("redis-2:6379\n")
    view = redis.SentinelView.from_redis_cli(head + sep + tail.replace("\nok\n", "\nerr\n", 1))
    assert view is not None and view.replica("redis-2") == redis.RedisNode(
        "redis-2", "slave", "err"
    )
    assert [r.name for r in view.healthy_replicas] == ["redis-3"]


def test_a_master_flagged_down():
    view = redis.SentinelView.from_redis_cli(fixture("redis/sentinel_derived_master_down.txt"))
    assert view is not None and view.master_down and not view.master.clean
    assert view.problems(3) == ["Redis master redis-1 is down (s_down,master,disconnected)"]


def test_sentinel_output_without_both_answers_is_no_view():
    text = fixture("redis/sentinel_master_replicas.txt")
    assert redis.SentinelView.from_redis_cli(text.split(redis.SEPARATOR)[0]) is None
    unknown = "ERR No such master with that name\n" + redis.SEPARATOR + "\n"
    view = redis.SentinelView.from_redis_cli(unknown)
    assert view is not None and view.replicas == ()
    assert view.problems(3)[0] == "Sentinel names no Redis master"


def test_sentinel_view_survives_its_json():
    view = redis.SentinelView.from_redis_cli(
        fixture("redis/sentinel_derived_replica_link_down.txt")
    )
    assert view is not None
    again = redis.SentinelView.from_json(json.loads(json.dumps(view.to_json())))
    assert again.master.name == view.master.name and again.master.flags == view.master.flags
    assert again.replicas == view.replicas


def test_sentinel_command_reads_the_password_inside_the_container():
    command = redis.sentinel_command(26379, "mymaster")
    assert command[:2] == ["sh", "-c"]
    assert command[2].count("redis-cli --askpass -p 26379 sentinel") == 2
    assert command[2].count(f"< {redis.PASSWORD_SECRET}") == 2
    assert "REDISCLI_AUTH" not in command[2]
    assert "sentinel master mymaster" in command[2] and "sentinel replicas mymaster" in command[2]
    assert command[2].count(redis.SEPARATOR) == 1


# --- HAProxy ---------------------------------------------------------------------------


def haproxy_view(name: str, task: str = "1") -> haproxy.HaproxyView:
    return haproxy.HaproxyView(task, haproxy.BackendServer.from_show_stat(fixture(name)))


def test_show_stat_lists_servers_not_proxies():
    servers = haproxy.BackendServer.from_show_stat(fixture("haproxy/show_stat_1.csv"))
    assert len(servers) == 9
    assert {s.backend for s in servers} == {"pg_primary", "pg_replicas", "redis"}
    assert haproxy.BackendServer("pg_primary", "pg-3", "UP") in servers
    assert haproxy.BackendServer("redis", "redis-2", "DOWN") in servers
    assert not any(s.server in ("FRONTEND", "BACKEND") for s in servers)


def test_each_haproxy_routes_writes_to_one_server():
    for name in ("haproxy/show_stat_1.csv", "haproxy/show_stat_2.csv"):
        view = haproxy_view(name)
        assert view.up_servers("pg_primary") == {"pg-3"}
        assert view.up_servers("pg_replicas") == {"pg-1", "pg-2"}
        assert view.up_servers("redis") == {"redis-1"}
        assert view.problems() == []


def test_two_redis_masters_up_is_a_problem():
    view = haproxy_view("haproxy/show_stat_1_derived_two_redis_masters.csv")
    assert view.up_servers("redis") == {"redis-1", "redis-2"}
    assert view.problems() == ["HAProxy backend redis has 2 servers UP, expected 1"]


@pytest.mark.parametrize(
    ("status", "up"),
    [("UP", True), ("UP 1/2", True), ("DOWN", False), ("DOWN 1/2", False), ("MAINT", False)],
)
def test_a_server_going_down_is_still_up(status, up):
    assert haproxy.BackendServer("redis", "redis-1", status).up is up


def test_no_primary_up_is_a_problem_and_replicas_may_be_several():
    view = haproxy_view("haproxy/show_stat_2.csv", "2")
    down = tuple(
        haproxy.BackendServer(s.backend, s.server, "DOWN") if s.backend == "pg_primary" else s
        for s in view.servers
    )
    assert haproxy.HaproxyView("2", down).problems() == [
        "HAProxy backend pg_primary has 0 servers UP, expected 1"
    ]


def test_up_in_every_haproxy_and_json_round_trip():
    views = [haproxy_view("haproxy/show_stat_1.csv", "1"), haproxy_view("haproxy/show_stat_2.csv")]
    assert haproxy.up_in_every(views, "pg_primary") == [{"pg-3"}, {"pg-3"}]
    assert haproxy.up_in_every([], "pg_primary") is None
    assert haproxy.up_in_every(None, "pg_primary") is None
    again = haproxy.HaproxyView.from_json("1", json.loads(json.dumps(views[0].to_json())))
    assert again == views[0]


# --- pretix health check, Swarm tasks --------------------------------------------------------


def test_health_check_json_says_the_code_or_the_error():
    ok = pretix.HealthCheck("http://127.0.0.1:8080/healthcheck/", status=200)
    assert ok.ok and ok.to_json() == {"url": ok.url, "status": 200}
    failed = pretix.HealthCheck(ok.url, status=502)
    assert not failed.ok
    refused = pretix.HealthCheck(ok.url, error="connection refused")
    assert not refused.ok and refused.to_json() == {"url": ok.url, "error": "connection refused"}


def swarm_fixture(web_starting: int = 0) -> tuple[list[swarm.Task], dict[str, str]]:
    """The recorded tasks; ``web_starting`` web tasks changed to "starting" (derived)."""
    services = json.loads(fixture("swarm/services.json"))
    names = {s["ID"]: s["Spec"]["Name"].removeprefix("pretix_") for s in services}
    tasks = json.loads(fixture("swarm/tasks.json"))
    web = [t for t in tasks if names[t["ServiceID"]] == "web"]
    for task in web[:web_starting]:
        task["Status"]["State"] = "starting"  # its healthcheck has not passed yet
    return [swarm.Task.from_api(t) for t in tasks], names


def test_running_tasks_per_service():
    tasks, names = swarm_fixture()
    counts = swarm.running_per_service(tasks, names)
    replicated = {"web": 2, "worker": 2, "haproxy": 2}
    assert counts == {name: replicated.get(name, 1) for name in names.values()}
    assert len(counts) == 17


def test_a_starting_task_is_not_running():
    tasks, names = swarm_fixture(web_starting=1)
    assert swarm.running_per_service(tasks, names)["web"] == 1
    other_stack = swarm.running_per_service(tasks, {})
    assert other_stack == {}
