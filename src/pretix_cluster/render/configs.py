"""The daemons' own config files, rendered from Jinja2 templates and the spec.

Files holding a password are delivered as Docker secrets, the rest as Docker
configs; both are immutable, so each gets a content-versioned object name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pretix_cluster.secrets import versioned_name
from pretix_cluster.spec import PORTS, ClusterSpec

TEMPLATES = Path(__file__).parent / "templates"
PATRONI_NAMESPACE = "/pretix-cluster/"
DB_NAME = "pretix"
DB_USER = "pretix"
METRICS_USER = "metrics"


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
    return ClusterFile(name, _environment().get_template(f"{name}.j2").render(**context), secret)


def render_files(spec: ClusterSpec, values: dict[str, str]) -> dict[str, ClusterFile]:
    """Every file the stack mounts, keyed by logical name."""
    files = [
        template("pretix.cfg", True, **pretix_context(spec, values)),
        template("patroni.yml", True, **patroni_context(spec, values)),
        template("haproxy.cfg", True, **haproxy_context(spec, values)),
        template("nginx.conf", False, **nginx_context(spec)),
        ClusterFile("pg_pretix_password", values["pg_pretix_password"], True),
        ClusterFile("redis_password", values["redis_password"], True),
    ]
    return {f.name: f for f in files}


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
        "pg_parameters": {
            "max_connections": pg.max_connections,
            "shared_buffers": pg.shared_buffers,
        },
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
