"""Redis and Sentinel: redis.conf and sentinel.conf of each node, and Sentinel's view
of the master and its replicas."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pretix_cluster.daemons import Exec
from pretix_cluster.errors import UserError
from pretix_cluster.spec import PORTS, ClusterSpec

PASSWORD_SECRET = "/run/secrets/redis_password"
# The Redis image's paths: the data volume, and where the daemons run their config
# from: Docker's per-container tmpfs /dev/shm (mode 1777, gone with the container).
DATA_DIR = "/data"
RUNTIME_DIR = "/dev/shm/redis"
MIN_REPLICAS_TO_WRITE = 1
MIN_REPLICAS_MAX_LAG_S = 10
SENTINEL_PARALLEL_SYNCS = 1
# Written unquoted into a config line: nothing that could end it or start another.
CONFIG_WORD = re.compile(r"[A-Za-z0-9_=-]+")
# Marks where one redis-cli answer ends and the next begins in one exec's output.
SEPARATOR = "--pretix-cluster--"
DOWN_FLAGS = ("s_down", "o_down")  # subjectively / objectively down, as Sentinel judges
REPLICA_FLAGS = "slave"  # exactly this: a replica Sentinel has no doubt about
LINK_OK = "ok"


# --- config ---------------------------------------------------------------------------


def config_context(
    values: dict[str, str], node: str, min_replicas_to_write: int
) -> dict[str, object]:
    """redis.conf.j2's values for one Redis node."""
    return {
        "node": node,
        "port": PORTS.redis,
        "data_dir": DATA_DIR,
        "password": _config_word(values["redis_password"]),
        "min_replicas_to_write": min_replicas_to_write,
        "min_replicas_max_lag_s": MIN_REPLICAS_MAX_LAG_S,
    }


def sentinel_config_context(
    spec: ClusterSpec, values: dict[str, str], node: str
) -> dict[str, object]:
    """sentinel.conf.j2's values for one Sentinel."""
    return {
        "node": node,
        "port": PORTS.sentinel,
        "runtime_dir": RUNTIME_DIR,
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


# --- Sentinel's view ---------------------------------------------------------------------


def sentinel_command(port: int, master_name: str) -> list[str]:
    """``SENTINEL MASTER`` and ``SENTINEL REPLICAS`` in one shell: half the cost of two
    execs, and both answers from the same Sentinel. Sentinels require the password:
    redis-cli reads it from the secret inside the container on its standard input
    (``--askpass``), never from an env var or a command line."""
    calls = [
        f"redis-cli --askpass -p {port} sentinel {q} {master_name} < {PASSWORD_SECRET}"
        for q in ("master", "replicas")
    ]
    return ["sh", "-c", f" && echo '{SEPARATOR}' && ".join(calls)]


def _pairs(lines: Sequence[str]) -> dict[str, str]:
    """redis-cli prints a map as alternating key and value lines."""
    lines = [line.strip() for line in lines if line.strip()]
    return dict(zip(lines[0::2], lines[1::2], strict=False))


def _records(lines: Sequence[str]) -> list[dict[str, str]]:
    """``SENTINEL REPLICAS`` prints one map per replica, each starting with ``name``."""
    records: list[list[str]] = []
    for line in (x.strip() for x in lines if x.strip()):
        if line == "name" and (not records or len(records[-1]) % 2 == 0):
            records.append([])
        if records:
            records[-1].append(line)
    return [_pairs(r) for r in records]


@dataclass(frozen=True)
class RedisNode:
    """A Redis node in Sentinel's records: its name (the announced host), Sentinel's
    flags for it, and for a replica the state of its link to the master."""

    name: str
    flags: str
    link: str | None = None  # master-link-status: "ok" | "err"; None for the master

    @classmethod
    def from_record(cls, record: dict[str, str]) -> RedisNode:
        return cls(record.get("ip", ""), record.get("flags", ""), record.get("master-link-status"))

    @property
    def down(self) -> bool:
        return any(f in self.flags.split(",") for f in DOWN_FLAGS)

    @property
    def clean(self) -> bool:
        """No down flag and Sentinel is connected to it."""
        return not self.down and "disconnected" not in self.flags.split(",")

    @property
    def healthy_replica(self) -> bool:
        return self.flags == REPLICA_FLAGS and self.link == LINK_OK


@dataclass(frozen=True)
class SentinelView:
    """What one Sentinel says: the master and the replicas it knows."""

    master: RedisNode
    replicas: tuple[RedisNode, ...]

    @classmethod
    def from_redis_cli(cls, output: str) -> SentinelView | None:
        """The output of :func:`sentinel_command`; None when it is not both answers."""
        lines = output.split("\n")
        if SEPARATOR not in (line.strip() for line in lines):
            return None
        cut = [line.strip() for line in lines].index(SEPARATOR)
        master = _pairs(lines[:cut])  # empty when Sentinel knows no such master
        return cls(
            RedisNode.from_record(master),
            tuple(RedisNode.from_record(r) for r in _records(lines[cut + 1 :])),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SentinelView:
        """The form :meth:`to_json` writes (a chaos sample's ``sentinel``)."""
        return cls(
            RedisNode(data.get("master") or "", data.get("flags") or ""),
            tuple(
                RedisNode(name, r.get("flags") or "", r.get("link"))
                for name, r in (data.get("replicas") or {}).items()
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "master": self.master.name,
            "flags": self.master.flags,
            "replicas": {r.name: {"flags": r.flags, "link": r.link} for r in self.replicas},
        }

    def replica(self, name: str) -> RedisNode | None:
        return next((r for r in self.replicas if r.name == name), None)

    @property
    def master_down(self) -> bool:
        return self.master.down

    @property
    def healthy_replicas(self) -> tuple[RedisNode, ...]:
        return tuple(r for r in self.replicas if r.healthy_replica)

    def problems(self, nodes: int) -> list[str]:
        """What keeps this view from a healthy set of ``nodes`` Redis nodes."""
        found = []
        if not self.master.name:
            found.append("Sentinel names no Redis master")
        elif self.master_down:
            found.append(f"Redis master {self.master.name} is down ({self.master.flags})")
        healthy = len(self.healthy_replicas)
        if healthy < nodes - 1:
            found.append(f"Redis has {healthy} healthy replicas, expected {nodes - 1}")
        return found


def probe(
    exec_: Exec, sentinels: Sequence[str], port: int, master_name: str, timeout: float
) -> SentinelView | None:
    """The first answering Sentinel's view; None when none answers."""
    output = exec_(sentinels, sentinel_command(port, master_name), timeout)
    return None if output is None else SentinelView.from_redis_cli(output)
