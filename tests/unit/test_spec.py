"""The spec accepts what can run and refuses, with the reason, what cannot."""

import tomllib

import pytest

from pretix_cluster import cli
from pretix_cluster.errors import UserError
from pretix_cluster.spec import ClusterSpec, load_spec, parse_spec, spec_toml


def test_defaults_match_the_documented_topology():
    spec = ClusterSpec()
    assert spec.web.replicas == 2
    assert spec.worker.replicas == 2
    assert spec.pg_nodes == ["pg-1", "pg-2", "pg-3"]
    assert spec.etcd_members == ["etcd-1", "etcd-2", "etcd-3"]
    assert spec.redis_nodes == ["redis-1", "redis-2", "redis-3"]
    assert spec.sentinel_nodes == ["sentinel-1", "sentinel-2", "sentinel-3"]
    assert spec.haproxy.replicas == 2
    assert spec.postgres.synchronous


def test_the_commented_default_file_parses_back_to_the_defaults():
    text = spec_toml()
    assert text.count("#") > 10
    assert parse_spec(tomllib.loads(text)) == ClusterSpec()


def test_a_customised_file_keeps_its_values():
    spec = parse_spec({"cluster": {"name": "shop2"}, "web": {"replicas": 5}})
    assert parse_spec(tomllib.loads(spec_toml(spec))) == spec


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"etcd": {"members": 4}}, "must be odd"),
        ({"etcd": {"members": 1}}, "greater than or equal to 3"),
        ({"web": {"replicas": 0}}, "web.replicas"),
        ({"redis": {"sentinels": 3, "quorum": 1}}, "majority"),
        ({"redis": {"sentinels": 3, "quorum": 4}}, "exceeds"),
        ({"postgres": {"ttl": 10, "loop_wait": 10, "retry_timeout": 10}}, "ttl"),
        ({"cluster": {"url": "ftp://x"}}, "http"),
        ({"cluster": {"url": "http://x/shop"}}, "path"),
        ({"cluster": {"name": "Bad_Name"}}, "cluster.name"),
        ({"nginx": {"port": 70000}}, "nginx.port"),
        ({"web": {"replicaz": 2}}, "web.replicaz"),
    ],
)
def test_impossible_specs_are_refused_with_the_reason(raw, reason):
    with pytest.raises(UserError, match=reason):
        parse_spec(raw)


def test_malformed_toml_is_one_sentence(tmp_path):
    bad = tmp_path / "cluster.toml"
    bad.write_text("[web\nreplicas = 2")
    with pytest.raises(UserError, match="not valid TOML"):
        load_spec(bad)


def test_a_missing_file_means_the_defaults(tmp_path):
    assert load_spec(tmp_path / "absent.toml") == ClusterSpec()


def test_ports_are_not_a_setting_and_say_so_in_one_sentence(tmp_path):
    spec_file = tmp_path / "cluster.toml"
    spec_file.write_text("[ports]\npatroni = 9000\nredis = 7000\n")
    with pytest.raises(UserError) as refused:
        load_spec(spec_file)
    message = str(refused.value)
    assert message == (
        f"{spec_file}: ports: the container ports are fixed by the images; "
        "remove the [ports] section."
    )
    assert "\n" not in message


def test_a_misspelt_key_is_named_with_how_to_fix_it():
    with pytest.raises(UserError, match=r"redis\.nodez: unknown key; remove it or fix"):
        parse_spec({"redis": {"nodez": 3}})


def test_the_ports_message_reaches_the_terminal_intact(tmp_path, monkeypatch, capsys):
    spec_file = tmp_path / "cluster.toml"
    spec_file.write_text("[ports]\nredis = 7000\n")
    monkeypatch.setattr("sys.argv", ["pretix-cluster", "render", "--spec", str(spec_file)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    printed = " ".join(capsys.readouterr().err.split())
    assert "remove the [ports] section." in printed


@pytest.mark.parametrize(
    ("section", "settings", "need"),
    [
        # seen: one web replica with 4 workers in 768M, its workers killed again and again
        ("web", {"gunicorn_workers": 4, "memory": "768M"}, "960M"),
        ("worker", {"concurrency": 4, "memory": "768M"}, "960M"),
    ],
)
def test_too_little_memory_for_the_pretix_processes_is_refused(section, settings, need):
    with pytest.raises(UserError) as refused:
        parse_spec({section: settings}, origin="test")
    message = str(refused.value)
    assert f"give [{section}] memory at least {need}" in message
    assert "\n" not in message


def test_the_default_pretix_sections_and_a_bigger_web_replica_are_accepted():
    parse_spec({}, origin="test")
    parse_spec({"web": {"gunicorn_workers": 4, "memory": "1G"}}, origin="test")
