"""The daemons' own config files, rendered from Jinja2 templates and the spec.

Each daemon's module (:mod:`pretix_cluster.daemons`) says what its template needs.

Files holding a password are delivered as Docker secrets, the rest as Docker
configs; both are immutable, so each gets a content-versioned object name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from pretix_cluster.daemons import haproxy, nginx, patroni, pretix, redis
from pretix_cluster.secrets import versioned_name
from pretix_cluster.spec import ClusterSpec
from pretix_cluster.tls import KeyPair

TEMPLATES = Path(__file__).parent / "templates"


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
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["lua"] = lua_literal
    return env


def lua_literal(value: object) -> str:
    """A Lua literal of a value made of dicts (identifier keys), lists, str, int, bool."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not value.isascii():
            raise ValueError(f"not an ASCII string: {value!r}")
        # JSON's escapes for ASCII (\\ \" \n \t) are Lua's too.
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "{ " + ", ".join(lua_literal(v) for v in value) + " }"
    if isinstance(value, dict):
        for key in value:
            if not (isinstance(key, str) and key.isidentifier() and key.isascii()):
                raise ValueError(f"not a Lua identifier: {key!r}")
        return "{ " + ", ".join(f"{k} = {lua_literal(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def template(name: str, secret: bool, **context: object) -> ClusterFile:
    """The file `name`, rendered from `templates/<name>.j2`."""
    return ClusterFile(name, _render(name, context), secret)


def _render(name: str, context: dict[str, object]) -> str:
    return _environment().get_template(f"{name}.j2").render(**context)


def render_files(
    spec: ClusterSpec, values: dict[str, str], edge: KeyPair | None = None
) -> dict[str, ClusterFile]:
    """Every file the stack mounts, keyed by logical name; `edge`: nginx's TLS pair."""
    files = [
        template("pretix.cfg", True, **pretix.config_context(spec, values)),
        template("patroni.yml", True, **patroni.config_context(spec, values)),
        template("haproxy.cfg", True, **haproxy.config_context(spec, values)),
        *nginx_files(spec, values, edge),
        ClusterFile("pg_pretix_password", values["pg_pretix_password"], True),
        ClusterFile("redis_password", values["redis_password"], True),
        ClusterFile("etcd_root_password", values["etcd_root_password"], True),
        *[redis_file(values, node) for node in spec.redis_nodes],
        *[sentinel_file(spec, values, node) for node in spec.sentinel_nodes],
    ]
    return {f.name: f for f in files}


def nginx_files(
    spec: ClusterSpec, values: dict[str, str], edge: KeyPair | None
) -> list[ClusterFile]:
    """nginx.conf, its pages and secrets: the TLS pair (None: an http URL) and, with a
    waiting room, the key signing its cookies. Keys are secrets, never configs.
    """
    pages = nginx.page_context(spec)
    files = [
        template("nginx.conf", False, **nginx.config_context(spec)),
        template(nginx.PAGE_HTML, False, **pages),
        template(nginx.PAGE_JSON, False, **pages),
    ]
    if edge is not None:
        files += [
            ClusterFile(nginx.TLS_CERT, edge.cert_pem.decode(), True),
            ClusterFile(nginx.TLS_KEY, edge.key_pem.decode(), True),
        ]
    if spec.waiting_room.enabled:
        files += [
            template(nginx.PAGE_WAITING, False, **nginx.waiting_page_context(spec)),
            ClusterFile(nginx.WAITING_ROOM_KEY, values[nginx.WAITING_ROOM_KEY], True),
        ]
    return files


def redis_config_name(node: str) -> str:
    """The logical name of one Redis or Sentinel node's config (one file per node)."""
    return f"{node}.conf"


def redis_file(
    values: dict[str, str], node: str, min_replicas_to_write: int = redis.MIN_REPLICAS_TO_WRITE
) -> ClusterFile:
    """redis.conf of `node`; a lone master (no replica to ack) passes 0 replicas."""
    context = redis.config_context(values, node, min_replicas_to_write)
    return ClusterFile(redis_config_name(node), _render("redis.conf", context), True)


def sentinel_file(spec: ClusterSpec, values: dict[str, str], node: str) -> ClusterFile:
    context = redis.sentinel_config_context(spec, values, node)
    return ClusterFile(redis_config_name(node), _render("sentinel.conf", context), True)
