"""etcd (Patroni's DCS): its members' health and which one leads, asked with etcdctl
inside a member's container, and its client authentication.

With authentication on, etcd serves only its users: ``root`` (the tool, through
the image's ``etcdctl-root``, which reads the password from the container's
Docker secret) and ``patroni``, whose role may read and write Patroni's key
prefix only. :func:`auth_setup_steps` turns it on: once the members form a
cluster, `up` runs them in a member's container, passwords on stdin.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pretix_cluster.daemons import Exec

ROOT = "root"
PATRONI_USER = "patroni"
PATRONI_ROLE = "patroni"
ROOT_ETCDCTL = "etcdctl-root"  # the image's wrapper: etcdctl logged in as ROOT
# What etcd answers a request without credentials once authentication is on.
AUTH_REQUIRED = "user name is empty"
# What a step repeated by a re-run `up` may answer: the thing exists already.
ALREADY_EXISTS = ("user name already exists", "role name already exists")


def etcdctl_command(port: int, *args: str) -> list[str]:
    """etcdctl as root against the member it runs in, with a short timeout, JSON output."""
    return [
        ROOT_ETCDCTL,
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


# --- client authentication ----------------------------------------------------------


@dataclass(frozen=True)
class AuthStep:
    """One etcdctl call of the set-up; ``password``: the secret it reads on stdin."""

    command: tuple[str, ...]
    password: str | None = None

    def succeeded(self, exit_code: int, output: str) -> bool:
        """Done now or by an earlier run (users and roles are created once)."""
        return exit_code == 0 or any(text in output for text in ALREADY_EXISTS)


def auth_setup_steps(port: int, patroni_prefix: str) -> list[AuthStep]:
    """Users root and patroni, patroni's role on ``patroni_prefix``, then authentication on.

    Run while authentication is off, so no step needs a login; every step is
    idempotent, and turning authentication on comes last, so an interrupted
    run is finished by the next one. ``--interactive=false``: etcdctl reads the
    new user's password from stdin, never from its command line.
    """

    def etcdctl(*args: str, password: str | None = None) -> AuthStep:
        return AuthStep(("etcdctl", f"--endpoints=http://127.0.0.1:{port}", *args), password)

    return [
        etcdctl("user", "add", ROOT, "--interactive=false", password="etcd_root_password"),
        etcdctl("role", "add", ROOT),
        etcdctl("user", "grant-role", ROOT, ROOT),
        etcdctl("role", "add", PATRONI_ROLE),
        etcdctl(
            "role", "grant-permission", PATRONI_ROLE, "--prefix=true", "readwrite", patroni_prefix
        ),
        etcdctl(
            "user", "add", PATRONI_USER, "--interactive=false", password="etcd_patroni_password"
        ),
        etcdctl("user", "grant-role", PATRONI_USER, PATRONI_ROLE),
        etcdctl("auth", "enable"),
    ]


def auth_probe_command(port: int) -> list[str]:
    """A read without credentials: refused with AUTH_REQUIRED once authentication is on."""
    return ["etcdctl", f"--endpoints=http://127.0.0.1:{port}", "get", "--keys-only", "auth-probe"]


def auth_enabled(output: str) -> bool:
    """Whether :func:`auth_probe_command`'s output says that etcd wants a login."""
    return AUTH_REQUIRED in output
