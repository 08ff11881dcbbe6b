"""etcd (Patroni's DCS): its members' health and which one leads, asked with etcdctl
inside a member's container."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pretix_cluster.daemons import Exec


def etcdctl_command(port: int, *args: str) -> list[str]:
    """etcdctl against the member it runs in, with a short timeout, JSON output."""
    return [
        "etcdctl",
        f"--endpoints=http://127.0.0.1:{port}",
        "--command-timeout=4s",
        *args,
        "-w",
        "json",
    ]


def _json_line(output: str) -> list[dict[str, Any]] | None:
    """etcdctl prints its JSON array on one line, after any warnings."""
    line = next((x for x in output.splitlines() if x.startswith("[")), None)
    return None if line is None else json.loads(line)


@dataclass(frozen=True)
class EndpointHealth:
    """One member, as ``etcdctl endpoint health --cluster -w json`` reports it."""

    endpoint: str
    healthy: bool
    error: str = ""

    @classmethod
    def from_etcdctl_json(cls, output: str) -> tuple[EndpointHealth, ...] | None:
        """Every member's health; None when the output holds no JSON answer."""
        entries = _json_line(output)
        if entries is None:
            return None
        return tuple(
            cls(str(e["endpoint"]), bool(e["health"]), str(e.get("error") or "")) for e in entries
        )

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "healthy": self.healthy}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EndpointHealth:
        return cls(str(data["endpoint"]), bool(data["healthy"]))


@dataclass(frozen=True)
class EndpointStatus:
    """One member, as ``etcdctl endpoint status --cluster -w json`` reports it."""

    endpoint: str
    member_id: int
    leader_id: int

    @classmethod
    def from_etcdctl_json(cls, output: str) -> tuple[EndpointStatus, ...]:
        return tuple(cls.from_json(e) for e in _json_line(output) or [])

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> EndpointStatus:
        status = entry.get("Status") or {}
        return cls(
            str(entry.get("Endpoint", "")),
            int((status.get("header") or {}).get("member_id") or 0),
            int(status.get("leader") or 0),
        )

    @property
    def host(self) -> str | None:
        return urlsplit(self.endpoint).hostname

    @property
    def is_leader(self) -> bool:
        return bool(self.leader_id) and self.member_id == self.leader_id


def leader_of(statuses: Sequence[EndpointStatus], members: Sequence[str]) -> str | None:
    """The member (of ``members``, the spec's names) that leads; None when none is known."""
    return next((s.host for s in statuses if s.is_leader and s.host in members), None)


def health_problems(members: Sequence[EndpointHealth], expected: int) -> list[str]:
    healthy = sum(1 for m in members if m.healthy)
    if healthy < expected:
        return [f"etcd has {healthy} healthy members, expected {expected}"]
    return []


def probe_health(
    exec_: Exec, members: Sequence[str], port: int, timeout: float = 20
) -> tuple[EndpointHealth, ...] | None:
    """Every member's health as the first answering member sees it; None: none answers."""
    command = etcdctl_command(port, "endpoint", "health", "--cluster")
    # etcdctl exits non-zero when any member is unhealthy; its JSON still says which.
    output = exec_(members, ["sh", "-c", " ".join(command) + " || true"], timeout)
    return None if output is None else EndpointHealth.from_etcdctl_json(output)


def probe_status(
    exec_: Exec, members: Sequence[str], port: int, timeout: float = 20
) -> tuple[EndpointStatus, ...] | None:
    """Every member's status (who leads); None when no member answers."""
    output = exec_(members, etcdctl_command(port, "endpoint", "status", "--cluster"), timeout)
    return None if output is None else EndpointStatus.from_etcdctl_json(output)
