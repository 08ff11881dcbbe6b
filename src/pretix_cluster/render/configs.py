"""The daemons' own config files, rendered from Jinja2 templates and the spec.

Files holding a password are delivered as Docker secrets, the rest as Docker
configs; both are immutable, so each gets a content-versioned object name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pretix_cluster.errors import UserError
from pretix_cluster.secrets import versioned_name
from pretix_cluster.spec import PORTS, ClusterSpec

TEMPLATES = Path(__file__).parent / "templates"
PATRONI_NAMESPACE = "/pretix-cluster/"
DB_NAME = "pretix"
DB_USER = "pretix"
METRICS_USER = "metrics"
# The Redis image's paths: the data volume, and where the daemons run their config
# from: Docker's per-container tmpfs /dev/shm (mode 1777, gone with the container).
REDIS_DATA_DIR = "/data"
REDIS_RUNTIME_DIR = "/dev/shm/redis"
REDIS_MIN_REPLICAS_TO_WRITE = 1
REDIS_MIN_REPLICAS_MAX_LAG_S = 10
SENTINEL_PARALLEL_SYNCS = 1
# Written unquoted into a config line: nothing that could end it or start another.
CONFIG_WORD = re.compile(r"[A-Za-z0-9_=-]+")


@dataclass(frozen=True)
class ClusterFile:
    """One file that a service mounts: its logical name, content and kind."""

    name: str
    content: str
    secret: bool

    def object_name(self, stack: str) -> str:
        return versioned_name(stack, self.name, self.content)


def _environment() -> Environment:
    # StrictUndefined: a misspelt variable must fail the render, not produce an empty value.
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def template(name: str, secret: bool, **context: object) -> ClusterFile:
    """The file `name`, rendered from `templates/<name>.j2`."""
    return ClusterFile(name, _render(name, context), secret)


def _render(name: str, context: dict[str, object]) -> str:
    return _environment().get_template(f"{name}.j2").render(**context)


def render_files(spec: ClusterSpec, values: dict[str, str]) -> dict[str, ClusterFile]:
    """Every file the stack mounts, keyed by logical name."""
    files = [
        template("pretix.cfg", True, **pretix_context(spec, values)),
        template("patroni.yml", True, **patroni_context(spec, values)),
        template("haproxy.cfg", True, **haproxy_context(spec, values)),
        template("nginx.conf", False, **nginx_context(spec)),
        ClusterFile("pg_pretix_password", values["pg_pretix_password"], True),
        ClusterFile("redis_password", values["redis_password"], True),
        *[redis_file(values, node) for node in spec.redis_nodes],
        *[sentinel_file(spec, values, node) for node in spec.sentinel_nodes],
    ]
    return {f.name: f for f in files}


def redis_config_name(node: str) -> str:
    """The logical name of one Redis or Sentinel node's config (one file per node)."""
    return f"{node}.conf"


def redis_file(
    values: dict[str, str], node: str, min_replicas_to_write: int = REDIS_MIN_REPLICAS_TO_WRITE
) -> ClusterFile:
    """redis.conf of `node`; a lone master (no replica to ack) passes 0 replicas."""
    context = redis_context(values, node, min_replicas_to_write)
    return ClusterFile(redis_config_name(node), _render("redis.conf", context), True)


def sentinel_file(spec: ClusterSpec, values: dict[str, str], node: str) -> ClusterFile:
    context = sentinel_context(spec, values, node)
    return ClusterFile(redis_config_name(node), _render("sentinel.conf", context), True)


def redis_context(
    values: dict[str, str], node: str, min_replicas_to_write: int
) -> dict[str, object]:
    return {
        "node": node,
        "port": PORTS.redis,
        "data_dir": REDIS_DATA_DIR,
        "password": _config_word(values["redis_password"]),
        "min_replicas_to_write": min_replicas_to_write,
        "min_replicas_max_lag_s": REDIS_MIN_REPLICAS_MAX_LAG_S,
    }


def sentinel_context(spec: ClusterSpec, values: dict[str, str], node: str) -> dict[str, object]:
    return {
        "node": node,
        "port": PORTS.sentinel,
        "runtime_dir": REDIS_RUNTIME_DIR,
        "password": _config_word(values["redis_password"]),
        "master_name": spec.redis.master_name,
        "down_after_ms": spec.redis.down_after_ms,
        "failover_timeout_ms": spec.redis.failover_timeout_ms,
        "parallel_syncs": SENTINEL_PARALLEL_SYNCS,
    }


def _config_word(value: str) -> str:
    if not CONFIG_WORD.fullmatch(value):
        raise UserError(
            "redis_password in the state folder's secrets/ holds characters a Redis config "
            "line cannot carry; use letters, digits, '-', '_' and '=' only."
        )
    return value


def pretix_context(spec: ClusterSpec, values: dict[str, str]) -> dict[str, object]:
    return {
        "url": spec.cluster.url,
        "instance_name": f"pretix ({spec.stack})",
        "currency": spec.shop.currency,
        "db": {
            "host": "haproxy",
            "port": PORTS.haproxy_pg_primary,
            "name": DB_NAME,
            "user": DB_USER,
            "password": values["pg_pretix_password"],
        },
        "replica": {"host": "haproxy", "port": PORTS.haproxy_pg_replicas},
        "redis": {
            "host": "haproxy",
            "port": PORTS.haproxy_redis,
            "password": values["redis_password"],
        },
        "django_secret": values["django_secret"],
        "metrics": {"user": METRICS_USER, "passphrase": values["metrics_passphrase"]},
    }


def patroni_context(spec: ClusterSpec, values: dict[str, str]) -> dict[str, object]:
    pg = spec.postgres
    return {
        "scope": spec.stack,
        "namespace": PATRONI_NAMESPACE,
        "etcd_hosts": [f"{m}:{PORTS.etcd_client}" for m in spec.etcd_members],
        "restapi_port": PORTS.patroni,
        "pg_port": PORTS.postgres,
        "superuser_password": values["pg_superuser_password"],
        "replication_password": values["pg_replication_password"],
        "rewind_password": values["pg_rewind_password"],
        "restapi_password": values["patroni_restapi_password"],
        **pg.dcs_settings(),
        "pg_parameters": pg.server_parameters(),
        "network_cidr_allow": "0.0.0.0/0",
    }


def haproxy_context(spec: ClusterSpec, values: dict[str, str]) -> dict[str, object]:
    return {
        "pg_nodes": spec.pg_nodes,
        "pg_port": PORTS.postgres,
        "patroni_port": PORTS.patroni,
        "ports": {
            "pg_primary": PORTS.haproxy_pg_primary,
            "pg_replicas": PORTS.haproxy_pg_replicas,
            "redis": PORTS.haproxy_redis,
            "health": PORTS.haproxy_health,
        },
        "redis_nodes": spec.redis_nodes,
        "redis_port": PORTS.redis,
        "redis_password": values["redis_password"],
        "check": {
            "inter_ms": spec.haproxy.check_inter_ms,
            "fall": spec.haproxy.check_fall,
            "rise": spec.haproxy.check_rise,
        },
    }


def nginx_context(spec: ClusterSpec) -> dict[str, object]:
    return {
        "server_name": spec.shop_host,
        # Host with the port: Django's CSRF origin check compares it with Origin.
        "proxy_host": spec.shop_netloc,
        "upstream": f"web:{PORTS.web}",
        "listen_port": PORTS.nginx,
        "client_max_body_size": "20m",
        # web has no VIP (see render/stack.py): nginx must follow task IPs via DNS.
        "upstream_resolve": True,
    }
