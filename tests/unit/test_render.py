"""The rendered stack is valid for Swarm, complete, and free of secret values."""

import configparser
import subprocess

import pytest
import yaml
from jinja2 import UndefinedError

from pretix_cluster.daemons import patroni
from pretix_cluster.errors import UserError
from pretix_cluster.images.build import COMPONENTS, ImageSet
from pretix_cluster.render.configs import (
    redis_file,
    render_files,
    sentinel_file,
    template,
)
from pretix_cluster.render.stack import dump_stack
from pretix_cluster.render.topology import HA
from pretix_cluster.spec import PORTS, ClusterSpec
from pretix_cluster.tls import LocalCA


@pytest.fixture
def spec():
    return ClusterSpec()


@pytest.fixture
def edge(tmp_path):
    return LocalCA.ensure(tmp_path / "tls").issue(["127.0.0.1"])


@pytest.fixture
def files(spec, values, edge):
    return HA.files(spec, values, edge)


@pytest.fixture
def stack(spec, files):
    images = ImageSet({c: f"pretix-cluster/{c}:unit" for c in COMPONENTS})
    return HA.stack(spec, images, files)


def test_docker_stack_config_accepts_the_stack(stack, tmp_path):
    path = tmp_path / "stack.yml"
    path.write_text(dump_stack(stack))
    result = subprocess.run(
        ["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert set(yaml.safe_load(result.stdout)["services"]) == set(stack["services"])


def test_every_service_has_a_healthcheck_and_a_restart_policy(stack):
    for name, service in stack["services"].items():
        assert service["healthcheck"]["test"], name
        assert service["deploy"]["restart_policy"]["condition"] == "any", name


def test_one_service_per_stateful_node_from_the_spec(stack, spec):
    names = set(stack["services"])
    for node in spec.stateful_nodes:
        assert node in names
        assert f"{node}-data" in stack["volumes"]
        assert stack["services"][node]["deploy"]["replicas"] == 1


def test_replica_counts_come_from_the_spec():
    spec = ClusterSpec.model_validate({"web": {"replicas": 5}, "worker": {"replicas": 3}})
    images = ImageSet({c: "x:y" for c in COMPONENTS})
    stack = HA.stack(spec, images, HA.files(spec, _fake_values()))
    assert stack["services"]["web"]["deploy"]["replicas"] == 5
    assert stack["services"]["worker"]["deploy"]["replicas"] == 3
    assert stack["services"]["cron"]["deploy"]["replicas"] == 1


def _fake_values():
    from pretix_cluster.secrets import SECRET_NAMES

    return {name: f"value-of-{name}" for name in SECRET_NAMES}


def test_only_nginx_publishes_ports_the_shops_and_the_redirecting_http_port(stack, spec):
    published = {name: s["ports"] for name, s in stack["services"].items() if s.get("ports")}
    assert list(published) == ["nginx"]
    assert [(p["target"], p["published"]) for p in published["nginx"]] == [
        (PORTS.nginx, spec.nginx.port),
        (PORTS.nginx_http, spec.nginx.http_port),
    ]


def test_backing_services_are_not_on_the_front_network(stack, spec):
    for node in spec.stateful_nodes:
        assert "front" not in stack["services"][node]["networks"]
    assert stack["services"]["nginx"]["networks"] == ["front"]


def test_web_rolls_start_first(stack):
    assert stack["services"]["web"]["deploy"]["update_config"]["order"] == "start-first"


def test_no_secret_value_in_the_stack_or_in_non_secret_files(stack, files, values, edge):
    rendered = dump_stack(stack) + "".join(f.content for f in files.values() if not f.secret)
    for name, value in (values | {"tls key": edge.key_pem.decode()}).items():
        assert value not in rendered, name


def test_secret_files_carry_the_values_they_need(files, values):
    assert values["django_secret"] in files["pretix.cfg"].content
    assert values["pg_pretix_password"] in files["pretix.cfg"].content
    assert values["pg_superuser_password"] in files["patroni.yml"].content
    assert values["redis_password"] in files["haproxy.cfg"].content
    public = {name for name, f in files.items() if not f.secret}
    assert public == {"nginx.conf", "unavailable.html", "unavailable.json"}


def test_patroni_config_is_yaml_with_synchronous_mode(files):
    config = yaml.safe_load(files["patroni.yml"].content)
    assert config["bootstrap"]["dcs"]["synchronous_mode"] is True
    assert config["bootstrap"]["dcs"]["postgresql"]["use_pg_rewind"] is True


@pytest.mark.parametrize("wait", [None, 0, 40])
def test_pretix_waits_for_a_primary_as_long_as_the_spec_says(values, edge, wait):
    spec = ClusterSpec() if wait is None else ClusterSpec(postgres={"connect_wait": wait})
    cfg = configparser.RawConfigParser()
    cfg.read_string(HA.files(spec, values, edge)["pretix.cfg"].content)
    # read by the image's pretix_cluster_settings, which falls back to 25 without it
    assert cfg.getint("pretix_cluster", "db_connect_wait") == (25 if wait is None else wait)


def test_pretix_never_points_at_a_single_backend_node(files, spec):
    cfg = files["pretix.cfg"].content
    for node in spec.pg_nodes + spec.redis_nodes:
        assert node not in cfg


def test_no_service_depends_on_ipvs(stack):
    # VIPs and the ingress mesh need the kernel's IPVS, missing on some hosts.
    for name, service in stack["services"].items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        for port in service.get("ports", []):
            assert port["mode"] == "host", name


def test_a_crashed_redis_node_returns_only_after_sentinel_could_fail_over(stack, spec):
    delay = stack["services"]["redis-1"]["deploy"]["restart_policy"]["delay"]
    assert int(delay.rstrip("s")) * 1000 > spec.redis.down_after_ms
    assert stack["services"]["sentinel-1"]["deploy"]["restart_policy"]["delay"] == "2s"


def test_patroni_timing_and_ports_come_from_the_spec(values):
    spec = ClusterSpec.model_validate({"postgres": {"ttl": 40, "loop_wait": 6, "retry_timeout": 9}})
    config = yaml.safe_load(render_files(spec, values)["patroni.yml"].content)
    dcs = config["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (40, 6, 9)
    assert config["restapi"]["listen"].endswith(f":{PORTS.patroni}")
    assert config["postgresql"]["listen"].endswith(f":{PORTS.postgres}")


@pytest.mark.parametrize("key", ["ttl", "loop_wait", "retry_timeout", "maximum_lag_on_failover"])
def test_a_value_missing_from_the_patroni_context_fails_the_render(spec, values, key):
    context = patroni.config_context(spec, values)
    del context[key]
    with pytest.raises(UndefinedError):
        template("patroni.yml", True, **context)


def _config_lines(content: str) -> list[str]:
    return [line for line in content.splitlines() if line and not line.startswith("#")]


def test_each_redis_node_mounts_its_own_rendered_config_as_a_secret(stack, files, spec, values):
    for node, role in [(n, "redis") for n in spec.redis_nodes] + [
        (n, "sentinel") for n in spec.sentinel_nodes
    ]:
        config = files[f"{node}.conf"]
        assert config.secret
        assert values["redis_password"] in config.content
        mounts = {s["source"]: s["target"] for s in stack["services"][node]["secrets"]}
        assert mounts[f"{node}.conf"] == f"{role}.conf"


def test_redis_config_names_the_node_and_needs_one_replica_to_write(files):
    lines = _config_lines(files["redis-2.conf"].content)
    assert "replica-announce-ip redis-2" in lines
    assert f"port {PORTS.redis}" in lines
    assert "min-replicas-to-write 1" in lines
    assert "dir /data" in lines
    # The role is decided at start; a fixed replicaof here would defeat failover.
    assert not any(line.startswith(("replicaof", "slaveof")) for line in lines)


def test_sentinel_config_takes_its_timing_from_the_spec(values):
    spec = ClusterSpec.model_validate(
        {"redis": {"down_after_ms": 4500, "failover_timeout_ms": 20000, "master_name": "cache"}}
    )
    lines = _config_lines(render_files(spec, values)["sentinel-3.conf"].content)
    assert "sentinel down-after-milliseconds cache 4500" in lines
    assert "sentinel failover-timeout cache 20000" in lines
    assert "sentinel announce-ip sentinel-3" in lines
    assert f"port {PORTS.sentinel}" in lines
    # The monitor line is state (the current master), written at start from the volume.
    assert not any(line.startswith("sentinel monitor") for line in lines)


def test_redis_daemons_keep_only_data_on_the_volume_and_read_ports_from_the_stack(
    stack, spec, files
):
    for node in spec.redis_nodes + spec.sentinel_nodes:
        service = stack["services"][node]
        assert service["volumes"] == [f"{node}-data:/data"]
        assert service["environment"]["REDIS_PORT"] == str(PORTS.redis)
        assert service["environment"]["SENTINEL_PORT"] == str(PORTS.sentinel)
    # Sentinel's working directory is the tmpfs it runs from, not the volume.
    assert "dir /dev/shm/redis" in _config_lines(files["sentinel-1.conf"].content)


def test_a_password_that_could_break_a_config_line_is_refused(spec, values):
    bad = values | {"redis_password": "abc\nreplicaof evil 6379"}
    with pytest.raises(UserError, match="cannot carry"):
        redis_file(bad, "redis-1")
    with pytest.raises(UserError, match="cannot carry"):
        sentinel_file(spec, bad, "sentinel-1")


def test_every_port_a_container_reads_from_its_environment_is_the_spec_port(stack, spec):
    services = stack["services"]
    expected = {
        spec.redis_nodes[0]: {"REDIS_PORT": PORTS.redis, "SENTINEL_PORT": PORTS.sentinel},
        "haproxy": {"HAPROXY_HEALTH_PORT": PORTS.haproxy_health},
        "web": {"PRETIX_WEB_PORT": PORTS.web},
        # With TLS the health check asks the plain HTTP server.
        "nginx": {"NGINX_LISTEN_PORT": PORTS.nginx_http},
    }
    for name, ports in expected.items():
        env = services[name]["environment"]
        assert {key: int(env[key]) for key in ports} == ports, name
    # Patroni and etcd take every PATRONI_* / ETCD_* as a setting: their checks read
    # the port off the address the stack gives the daemon.
    patroni = services[spec.pg_nodes[0]]["environment"]["PATRONI_RESTAPI_CONNECT_ADDRESS"]
    assert patroni.endswith(f":{PORTS.patroni}")
    etcd = services[spec.etcd_members[0]]["environment"]["ETCD_LISTEN_PEER_URLS"]
    assert etcd.endswith(f":{PORTS.etcd_peer}")


def test_data_tier_members_are_checked_every_five_seconds(stack):
    """Each check is a `docker exec` (~70 ms of CPU): 3-s checks of 11 members cost ~0.25 cores."""
    checked = [n for n in stack["services"] if n.startswith(("pg-", "redis-", "sentinel-"))]
    for name in [*checked, "haproxy"]:
        check = stack["services"][name]["healthcheck"]
        assert (check["interval"], check["retries"]) == ("5s", 3), name


@pytest.mark.parametrize("on", [True, False])
def test_pretix_metrics_endpoint_follows_the_spec(on, values, edge):
    spec = ClusterSpec.model_validate({"web": {"metrics": on}})
    config = configparser.RawConfigParser()
    config.read_string(HA.files(spec, values, edge)["pretix.cfg"].content)
    assert config.has_section("metrics") is on
    if on:
        assert config.getboolean("metrics", "enabled")
        assert config.get("metrics", "passphrase") == values["metrics_passphrase"]


def test_lua_literals_of_the_settings_nginx_hands_to_its_lua():
    from pretix_cluster.render.configs import lua_literal

    assert lua_literal({"a": 1, "b": True, "c": ["/x", 'q"'], "d": {}}) == (
        '{ a = 1, b = true, c = { "/x", "q\\"" }, d = {  } }'
    )
    with pytest.raises(ValueError, match="Lua identifier"):
        lua_literal({"not an identifier": 1})
    with pytest.raises(ValueError, match="ASCII"):
        lua_literal("café")
