"""Patroni (PostgreSQL with automatic failover): patroni.yml, its dynamic settings,
and its own view of the cluster (the REST API's ``/cluster``).

Patroni reads ``bootstrap.dcs`` from patroni.yml only when it creates the
cluster; afterwards ttl, loop_wait, retry_timeout and synchronous_mode live in
the DCS. Without :func:`apply_dynamic_settings` a changed spec (or a tuned
default) would silently never reach a cluster created by an older version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pretix_cluster.daemons import Exec, etcd
from pretix_cluster.errors import UserError
from pretix_cluster.spec import PORTS, ClusterSpec

PATRONI_NAMESPACE = "/pretix-cluster/"
# The database and role pretix uses (created by the postgres image's post_bootstrap.sh).
DB_NAME = "pretix"
DB_USER = "pretix"
PATRONI_CONFIG = "/run/secrets/patroni.yml"
POSTGRES_USER = "postgres"  # the secret is readable by this uid only

LEADER = "leader"
SYNC_STANDBY = "sync_standby"
REPLICA = "replica"
RUNNING = "running"  # a leader's state
STREAMING = "streaming"  # a replica's state while it follows the leader
LIVE_STATES = (RUNNING, STREAMING)

CLUSTER_PROBE = (
    "import urllib.request;"
    "print(urllib.request.urlopen('http://127.0.0.1:{port}/cluster', timeout=5).read().decode())"
)

Progress = Callable[[str], None]
# One PostgreSQL container's shell: run a command as POSTGRES_USER, exit code and output.
Shell = Callable[[list[str]], tuple[int, str]]


# --- config ---------------------------------------------------------------------------


def config_context(spec: ClusterSpec, values: dict[str, str]) -> dict[str, object]:
    """patroni.yml.j2's values."""
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
        "etcd_username": etcd.PATRONI_USER,
        "etcd_password": values["etcd_patroni_password"],
        **pg.dcs_settings(),
        "pg_parameters": pg.server_parameters(),
        "network_cidr_allow": "0.0.0.0/0",
    }


def edit_config_command(settings: dict[str, object]) -> list[str]:
    """patronictl changes the DCS through the leader's REST API, with the config's credentials."""
    command = ["patronictl", "-c", PATRONI_CONFIG, "edit-config", "--force", "--quiet"]
    for key, value in settings.items():
        rendered = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["--set", f"{key}={rendered}"]
    return command


def apply_dynamic_settings(
    settings: dict[str, object], shells: Iterable[Shell], progress: Progress
) -> None:
    """Converge the DCS to the spec through the first node that accepts it; patronictl
    leaves an unchanged config alone. ``shells``: one per running PostgreSQL container,
    tried in order (a lazy iterable: the others are not even looked up)."""
    progress("applying Patroni's dynamic settings")
    command = edit_config_command(settings)
    last = ["no PostgreSQL node is running"]
    for shell in shells:
        code, output = shell(command)
        if code == 0:
            return
        last = output.strip().splitlines()[-1:] or ["no output"]
    raise UserError(
        f"Patroni did not accept its settings ({last[0][:160]}); "
        "check `status`, then run `up` again."
    )


# --- state --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One node as Patroni's ``/cluster`` lists it."""

    name: str
    role: str  # leader | sync_standby | replica
    state: str  # running | streaming | starting | stopped | ...
    lag: int | str | None = None  # bytes behind the leader; "unknown" while it cannot tell
    timeline: int | None = None
    host: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Member:
        return cls(
            name=str(data.get("name") or ""),
            role=str(data.get("role") or ""),
            state=str(data.get("state") or ""),
            lag=data.get("lag"),
            timeline=data.get("timeline"),
            host=data.get("host"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "state": self.state,
            "lag": self.lag,
            "timeline": self.timeline,
            "host": self.host,
        }

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    @property
    def is_sync_standby(self) -> bool:
        return self.role == SYNC_STANDBY

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def running_leader(self) -> bool:
        return self.is_leader and self.state == RUNNING

    @property
    def streaming_replica(self) -> bool:
        """A replica (synchronous or not) that follows the leader."""
        return not self.is_leader and self.state == STREAMING

    @property
    def serving(self) -> bool:
        """In its place: the running leader, or a replica streaming from it."""
        return self.running_leader or (
            self.role in (REPLICA, SYNC_STANDBY) and self.state == STREAMING
        )


@dataclass(frozen=True)
class ClusterView:
    """The members as one Patroni node sees them."""

    members: tuple[Member, ...]

    @classmethod
    def from_cluster_json(cls, text: str) -> ClusterView:
        """The body of ``GET /cluster``."""
        return cls.from_json(json.loads(text).get("members", []))

    @classmethod
    def from_json(cls, members: Sequence[dict[str, Any]]) -> ClusterView:
        return cls(tuple(Member.from_json(m) for m in members))

    def to_json(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.members]

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    @property
    def leaders(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.is_leader)

    @property
    def leader(self) -> Member | None:
        """The one leader; None when there is none, or more than one."""
        return self.leaders[0] if len(self.leaders) == 1 else None

    @property
    def sync_standbys(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.is_sync_standby)

    def with_role(self, role: str) -> tuple[Member, ...]:
        return tuple(m for m in self.members if m.role == role)

    def problems(self, nodes: int, synchronous: bool) -> list[str]:
        """What keeps this view from a healthy cluster of ``nodes`` members."""
        found = []
        leaders = [m for m in self.members if m.running_leader]
        if len(leaders) != 1:
            found.append(f"PostgreSQL has {len(leaders)} running leaders, expected 1")
        streaming = [m for m in self.members if m.streaming_replica]
        if len(streaming) < nodes - 1:
            found.append(
                f"PostgreSQL has {len(streaming)} streaming replicas, expected {nodes - 1}"
            )
        if synchronous and not self.sync_standbys:
            found.append("PostgreSQL has no synchronous standby")
        return found


def probe(exec_: Exec, nodes: Sequence[str], port: int, timeout: float) -> ClusterView | None:
    """``/cluster`` as the first answering node (in the order given) sees it; None: none
    answers. Asked from inside the node: the REST API is not published."""
    output = exec_(nodes, ["python3", "-c", CLUSTER_PROBE.format(port=port)], timeout)
    return None if output is None else ClusterView.from_cluster_json(output)
