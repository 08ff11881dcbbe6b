"""redis-role (images/redis/role.py): who is master at a Redis node's start.

role.py is a script in the Redis image, not part of this package: it is loaded from
the source tree by path. The answers it parses are real redis-cli outputs
(tests/fixtures/redis/, see the README there).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from pretix_cluster import images

ROLE_PY = Path(images.__file__).parent / "redis" / "role.py"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "redis"
NODES = ("redis-1", "redis-2", "redis-3")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
PORT = 6379


def _load_role_module():
    spec = importlib.util.spec_from_file_location("redis_role", ROLE_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


role = _load_role_module()


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# Parsed real answers.
NAMES_REDIS_1 = role.SentinelAnswer.from_redis_cli(fixture("sentinel_get_master_addr.txt"))
KNOWS_NO_MASTER = role.SentinelAnswer.from_redis_cli(
    fixture("sentinel_get_master_addr_unknown.txt")
)
MASTER_WITH_REPLICAS = role.Peer(
    role.Role.from_redis_cli(fixture("role_master.txt")),
    role.Replication.from_redis_cli(fixture("info_replication_master.txt")),
)
MASTER_ALONE = role.Peer(
    role.Role.from_redis_cli(fixture("role_master_alone.txt")),
    role.Replication.from_redis_cli(fixture("info_replication_master_alone.txt")),
)
REPLICA = role.Peer(
    role.Role.from_redis_cli(fixture("role_replica.txt")),
    role.Replication.from_redis_cli(fixture("info_replication_replica.txt")),
)
REPLICA_OF_A_DEAD_MASTER = role.Peer(
    role.Role.from_redis_cli(fixture("role_replica_connecting.txt")),
    role.Replication.from_redis_cli(fixture("info_replication_replica_connecting.txt")),
)


def seen(me="redis-2", sentinels=(None, None, None), peers=None, has_data=False, ips=()):
    """Observations of `me` in the default three-node set; nobody answers unless told."""
    peers = peers or {}
    return role.Observations(
        me=me,
        my_addresses=frozenset([me, *ips]),
        nodes=NODES,
        redis_port=PORT,
        sentinels=dict(zip(SENTINELS, sentinels, strict=True)),
        peers={n: peers.get(n) for n in NODES if n != me},
        has_data=has_data,
    )


def named(host: str) -> object:
    """A Sentinel's answer naming `host`: the recorded one, with another host if asked."""
    return role.SentinelAnswer(role.Address(host, NAMES_REDIS_1.master.port))


# --- parsers ---------------------------------------------------------------------------


def test_a_sentinel_names_the_master_or_knows_none():
    assert NAMES_REDIS_1.master == role.Address("redis-1", 6379)
    assert KNOWS_NO_MASTER.master is None


def test_role_of_a_master_lists_its_replicas():
    assert MASTER_WITH_REPLICAS.role.is_master
    assert MASTER_WITH_REPLICAS.role.replicas == (
        role.Address("redis-2", 6379),
        role.Address("redis-3", 6379),
    )
    assert MASTER_ALONE.role.is_master and MASTER_ALONE.role.replicas == ()


def test_role_of_a_replica_names_its_master_even_while_it_cannot_reach_it():
    assert not REPLICA.role.is_master
    assert REPLICA.role.master == role.Address("redis-1", 6379)
    assert REPLICA_OF_A_DEAD_MASTER.role.master == role.Address("10.255.255.1", 6379)


def test_replication_tells_which_nodes_may_hold_data():
    assert MASTER_WITH_REPLICAS.replication.connected_replicas == 2
    assert MASTER_WITH_REPLICAS.replication.has_data
    assert REPLICA.replication.has_data
    assert REPLICA_OF_A_DEAD_MASTER.replication.has_data
    # A master that never had a replica never accepted a write (min-replicas-to-write).
    assert not MASTER_ALONE.replication.has_data


@pytest.mark.parametrize(
    "parse",
    [role.SentinelAnswer.from_redis_cli, role.Role.from_redis_cli, role.Replication.from_redis_cli],
)
def test_an_error_reply_is_no_answer(parse):
    """redis-cli exits 0 on an error reply (here: a wrong password) and prints it."""
    with pytest.raises(ValueError):
        parse(fixture("role_wrong_password.txt"))


# --- the rules ---------------------------------------------------------------------------


def test_a_majority_of_sentinels_names_the_master_this_node_follows():
    decision = role.decide(seen(sentinels=(NAMES_REDIS_1, None, NAMES_REDIS_1), has_data=True))
    assert decision.kind is role.Kind.REPLICA
    assert decision.line() == "replica redis-1 6379"


def test_a_majority_naming_this_node_makes_it_master_by_name_or_ip():
    by_name = seen(me="redis-1", sentinels=(NAMES_REDIS_1,) * 3, has_data=True)
    assert role.decide(by_name).kind is role.Kind.MASTER
    by_ip = seen(me="redis-3", sentinels=(named("10.0.3.7"),) * 3, ips=["10.0.3.7"])
    assert role.decide(by_ip).kind is role.Kind.MASTER


def test_one_answering_sentinel_is_not_a_majority():
    """The old entrypoint followed a single answering Sentinel."""
    decision = role.decide(seen(sentinels=(NAMES_REDIS_1, None, None), has_data=True))
    assert decision.kind is role.Kind.WAIT


def test_a_split_vote_is_not_a_majority():
    answers = (NAMES_REDIS_1, named("redis-3"), KNOWS_NO_MASTER)
    assert role.decide(seen(sentinels=answers, has_data=True)).kind is role.Kind.WAIT


def test_without_majority_a_master_with_replicas_is_followed():
    decision = role.decide(seen(peers={"redis-3": MASTER_WITH_REPLICAS}, has_data=True))
    assert decision.line() == "replica redis-3 6379"


def test_without_majority_a_lone_master_named_by_a_sentinel_is_followed():
    decision = role.decide(
        seen(me="redis-3", sentinels=(None, NAMES_REDIS_1, None), peers={"redis-1": MASTER_ALONE})
    )
    assert decision.line() == "replica redis-1 6379"


def test_a_lone_master_nobody_names_is_not_followed():
    decision = role.decide(seen(me="redis-3", peers={"redis-1": MASTER_ALONE}))
    assert decision.kind is role.Kind.WAIT


def test_two_confirmed_masters_are_not_followed():
    peers = {"redis-1": MASTER_WITH_REPLICAS, "redis-3": MASTER_WITH_REPLICAS}
    assert role.decide(seen(peers=peers)).kind is role.Kind.WAIT


def test_the_first_node_bootstraps_an_empty_set_nobody_knows():
    decision = role.decide(seen(me="redis-1", sentinels=(KNOWS_NO_MASTER, None, None)))
    assert decision.kind is role.Kind.MASTER
    assert decision.line() == "master"


def test_only_the_first_node_bootstraps():
    assert role.decide(seen(me="redis-2")).kind is role.Kind.WAIT


def test_a_node_with_data_never_bootstraps_by_list_order():
    """The old entrypoint made the first node master after 15 s, whatever its data."""
    assert role.decide(seen(me="redis-1", has_data=True)).kind is role.Kind.WAIT


def test_no_bootstrap_while_a_sentinel_names_a_master():
    decision = role.decide(seen(me="redis-1", sentinels=(None, named("redis-2"), None)))
    assert decision.kind is role.Kind.WAIT


@pytest.mark.parametrize("peer", [REPLICA_OF_A_DEAD_MASTER, MASTER_ALONE])
def test_no_bootstrap_while_another_node_holds_data_or_is_master(peer):
    assert role.decide(seen(me="redis-1", peers={"redis-3": peer})).kind is role.Kind.WAIT


def test_a_lone_redis_without_sentinels_is_master_even_with_data():
    alone = role.Observations(
        me="redis",
        my_addresses=frozenset(["redis"]),
        nodes=("redis",),
        redis_port=PORT,
        sentinels={},
        peers={},
        has_data=True,
    )
    assert role.decide(alone).kind is role.Kind.MASTER


# --- the I/O around the rules ------------------------------------------------------------


def test_observe_asks_every_sentinel_and_peer_and_parses_their_answers(tmp_path):
    answers = {
        ("sentinel-1", 26379): fixture("sentinel_get_master_addr.txt"),
        ("sentinel-2", 26379): fixture("sentinel_get_master_addr.txt"),
        ("redis-1", PORT, "ROLE"): fixture("role_master.txt"),
        ("redis-1", PORT, "INFO"): fixture("info_replication_master.txt"),
        ("redis-2", PORT, "ROLE"): fixture("role_wrong_password.txt"),
    }

    def ask(host, port, command):
        return answers.get((host, port)) or answers.get((host, port, command[0]))

    settings = role.Settings("redis-3", NODES, SENTINELS, "mymaster", PORT, 26379, 0)
    observed = role.observe(settings, ask, tmp_path)
    assert observed.sentinels == {
        "sentinel-1": NAMES_REDIS_1,
        "sentinel-2": NAMES_REDIS_1,
        "sentinel-3": None,
    }
    assert observed.peers == {"redis-1": MASTER_WITH_REPLICAS, "redis-2": None}
    assert not observed.has_data
    assert role.decide(observed).line() == "replica redis-1 6379"


def test_any_aof_or_rdb_file_is_data(tmp_path):
    assert not role._has_data(tmp_path)
    (tmp_path / "appendonlydir").mkdir()
    assert not role._has_data(tmp_path)
    (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").write_text("")
    assert role._has_data(tmp_path)
    (tmp_path / "appendonlydir" / "appendonly.aof.1.incr.aof").unlink()
    (tmp_path / "dump.rdb").write_text("")
    assert role._has_data(tmp_path)


def test_settings_come_from_the_stack_environment():
    env = {
        "REDIS_NODE_NAME": "redis",
        "REDIS_NODES": "redis",
        "REDIS_SENTINELS": ",",
        "REDIS_MASTER_NAME": "mymaster",
        "REDIS_PORT": "6379",
        "SENTINEL_PORT": "26379",
    }
    settings = role.Settings.from_env(env)
    assert settings.sentinels == () and settings.nodes == ("redis",)
    assert settings.wait_s == role.DEFAULT_WAIT_S
    with pytest.raises(ValueError):
        role.Settings.from_env(env | {"REDIS_NODE_NAME": "redis-9"})


def test_the_password_goes_to_redis_cli_on_stdin_only(monkeypatch):
    calls = []

    def run(argv, **kwargs):
        calls.append((argv, kwargs))
        return subprocess.CompletedProcess(argv, 0, stdout="PONG\n", stderr="")

    monkeypatch.setattr(role.subprocess, "run", run)
    assert role.redis_cli("s3cret-pw")("redis-1", 6379, ["PING"]) == "PONG\n"
    [(argv, kwargs)] = calls
    assert "--askpass" in argv
    assert not any("s3cret-pw" in arg for arg in argv)
    assert "env" not in kwargs
    assert kwargs["input"] == "s3cret-pw\n"


@pytest.mark.parametrize("topology", ["HA", "SINGLE_NODE"])
def test_every_redis_node_of_a_rendered_stack_has_the_settings_its_role_reads(topology, values):
    """The bench's single-node Redis once lacked REDIS_MASTER_NAME and never started."""
    from pretix_cluster.images.build import COMPONENTS, ImageSet
    from pretix_cluster.render import topology as topologies
    from pretix_cluster.spec import ClusterSpec

    shape = getattr(topologies, topology)
    spec = ClusterSpec()
    images_ = ImageSet({c: f"pretix-cluster/{c}:unit" for c in COMPONENTS})
    stack = shape.stack(spec, images_, shape.files(spec, values))
    redis_nodes = {n: s for n, s in stack["services"].items() if s.get("command") == ["redis"]}
    assert redis_nodes
    for name, service in redis_nodes.items():
        settings = role.Settings.from_env(service["environment"])
        assert settings.me in settings.nodes, name
