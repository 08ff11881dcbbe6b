"""HAProxy (the one address of the PostgreSQL primary, its replicas and the Redis master):
haproxy.cfg, and the server states of its stats socket (``show stat``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from pretix_cluster.daemons import Run
from pretix_cluster.spec import PORTS, ClusterSpec

SHOW_STAT_COMMAND = [
    "sh",
    "-c",
    "echo 'show stat' | socat stdio UNIX:/var/run/haproxy/admin.sock",
]
# Rows of show stat that are proxies, not servers.
PROXY_ROWS = ("FRONTEND", "BACKEND")
# The backends that must route to exactly one server at a time (single writer);
# the replicas' backend spreads reads over all of them.
SINGLE_SERVER_BACKENDS = ("pg_primary", "redis")
PG_PRIMARY = "pg_primary"
PG_REPLICAS = "pg_replicas"
REDIS = "redis"
STATS_USER = "stats"


def config_context(spec: ClusterSpec, values: dict[str, str]) -> dict[str, object]:
    """haproxy.cfg.j2's values."""
    return {
        "pg_nodes": spec.pg_nodes,
        "pg_port": PORTS.postgres,
        "patroni_port": PORTS.patroni,
        "ports": {
            PG_PRIMARY: PORTS.haproxy_pg_primary,
            PG_REPLICAS: PORTS.haproxy_pg_replicas,
            REDIS: PORTS.haproxy_redis,
            "health": PORTS.haproxy_health,
        },
        "redis_nodes": spec.redis_nodes,
        "redis_port": PORTS.redis,
        "redis_password": values["redis_password"],
        "stats_user": STATS_USER,
        "stats_password": values["haproxy_stats_password"],
        "check": {
            "inter_ms": spec.haproxy.check_inter_ms,
            "fall": spec.haproxy.check_fall,
            "rise": spec.haproxy.check_rise,
        },
    }


@dataclass(frozen=True)
class BackendServer:
    """One server row of ``show stat``: which backend, which server, its check state."""

    backend: str  # pxname
    server: str  # svname
    status: str  # "UP", "UP 1/2" (going down), "DOWN", "MAINT (resolution)", ...

    @classmethod
    def from_show_stat(cls, text: str) -> tuple[BackendServer, ...]:
        """The server rows of ``show stat``'s CSV (its header line starts with ``# ``)."""
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return tuple(
            cls(r["pxname"], r["svname"], r["status"])
            for r in rows
            if r.get("svname") not in (*PROXY_ROWS, None)
        )

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")  # "UP 1/2" is still up (going down)


@dataclass(frozen=True)
class HaproxyView:
    """What one HAProxy task routes: ``task`` is its replica's label (``1``, ``2``)."""

    task: str
    servers: tuple[BackendServer, ...]

    @classmethod
    def from_json(cls, task: str, backends: dict[str, dict[str, str]]) -> HaproxyView:
        """The form :meth:`to_json` writes: {backend: {server: status}}."""
        return cls(
            task,
            tuple(
                BackendServer(backend, server, status)
                for backend, servers in backends.items()
                for server, status in servers.items()
            ),
        )

    def to_json(self) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for s in self.servers:
            found.setdefault(s.backend, {})[s.server] = s.status
        return found

    def backends(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.backend for s in self.servers))

    def up_servers(self, backend: str) -> set[str]:
        """The servers this HAProxy routes ``backend`` to."""
        return {s.server for s in self.servers if s.backend == backend and s.up}

    def problems(self) -> list[str]:
        """A single-writer backend that routes to none or to several servers."""
        found = []
        for backend in self.backends():
            up = len(self.up_servers(backend))
            if backend in SINGLE_SERVER_BACKENDS and up != 1:
                found.append(f"HAProxy backend {backend} has {up} servers UP, expected 1")
        return found


def up_in_every(views: Sequence[HaproxyView] | None, backend: str) -> list[set[str]] | None:
    """Per answering HAProxy, the servers it routes ``backend`` to; None when none answered."""
    if not views:
        return None
    return [v.up_servers(backend) for v in views]


def probe(run: Run, timeout: float = 20) -> tuple[BackendServer, ...] | None:
    """One HAProxy's servers, from its stats socket; None when it does not answer."""
    output = run(SHOW_STAT_COMMAND, timeout)
    return None if output is None else BackendServer.from_show_stat(output)
