"""`status`: what every layer of the cluster says about itself, and a verdict.

Each probe asks the component itself (Swarm, Patroni's REST API, Sentinel,
HAProxy's stats socket, pretix's /healthcheck/ through nginx), from inside the
cluster's own containers, so nothing internal has to be published. What to ask
and how to read the answer is each daemon's module's (:mod:`pretix_cluster.daemons`);
this module runs the probes and judges their typed answers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from docker.models.containers import Container

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons import Exec, Run, etcd, haproxy, nginx, patroni, pretix, redis
from pretix_cluster.spec import PORTS, ClusterSpec

PROBE_TIMEOUT_S = 20.0


# --- running probes in the cluster's containers --------------------------------------


def container_run(container: Container) -> Run:
    """Run a command in this container: its output on exit code 0, else None."""

    def run(command: Sequence[str], timeout: float) -> str | None:
        try:
            code, output = swarm.exec_in(container, list(command), timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return output if code == 0 else None

    return run


def cluster_exec(cluster: Cluster) -> Exec:
    """Run a command in the first running container of the given services that answers."""

    def exec_(services: Sequence[str], command: Sequence[str], timeout: float) -> str | None:
        for short in services:
            for container in swarm.running_containers(cluster.client, cluster.stack, short):
                output = container_run(container)(command, timeout)
                if output is not None:
                    return output
        return None

    return exec_


def task_label(container: Container) -> str:
    """`pretix_haproxy.1.abc` -> `1`: which replica, short enough for a table."""
    return container.name.split(".")[1] if "." in container.name else container.name


# --- each daemon's view ----------------------------------------------------------------


def patroni_view(
    cluster: Cluster, nodes: Sequence[str] | None = None, timeout: float = PROBE_TIMEOUT_S
) -> patroni.ClusterView | None:
    """Patroni's /cluster as the first answering node (of ``nodes``) sees it."""
    spec = cluster.spec
    return patroni.probe(cluster_exec(cluster), nodes or spec.pg_nodes, PORTS.patroni, timeout)


def sentinel_view(cluster: Cluster, timeout: float = PROBE_TIMEOUT_S) -> redis.SentinelView | None:
    spec = cluster.spec
    return redis.probe(
        cluster_exec(cluster),
        spec.sentinel_nodes,
        PORTS.sentinel,
        spec.redis.master_name,
        timeout,
    )


def etcd_health(
    cluster: Cluster, timeout: float = PROBE_TIMEOUT_S
) -> tuple[etcd.EndpointHealth, ...] | None:
    spec = cluster.spec
    return etcd.probe_health(cluster_exec(cluster), spec.etcd_members, PORTS.etcd_client, timeout)


def haproxy_view(
    container: Container, timeout: float = PROBE_TIMEOUT_S
) -> haproxy.HaproxyView | None:
    """What one HAProxy task routes; None when its stats socket does not answer."""
    servers = haproxy.probe(container_run(container), timeout)
    return None if servers is None else haproxy.HaproxyView(task_label(container), servers)


@dataclass(frozen=True)
class WaitingRoomView:
    """One entry node's waiting room (its nginx task)."""

    task: str
    room: nginx.WaitingRoomState


def waiting_rooms(
    cluster: Cluster, timeout: float = PROBE_TIMEOUT_S
) -> tuple[WaitingRoomView, ...]:
    """Each running nginx's room (none without [waiting_room]); silent ones left out."""
    if not cluster.spec.waiting_room.enabled:
        return ()
    views = []
    for container in swarm.running_containers(cluster.client, cluster.stack, "nginx"):
        room = nginx.probe_waiting_room(container_run(container), cluster.spec, timeout)
        if room is not None:
            views.append(WaitingRoomView(task_label(container), room))
    return tuple(views)


def healthcheck(cluster: Cluster, timeout: float = 10) -> pretix.HealthCheck:
    return pretix.probe_health(cluster.spec, cluster.shop_trust().verify(), timeout)


# --- the verdict -------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Every layer's typed answer (None: it did not answer) and the problems found."""

    service_states: tuple[swarm.ServiceState, ...] = ()
    etcd_members: tuple[etcd.EndpointHealth, ...] | None = None
    cluster_view: patroni.ClusterView | None = None
    sentinel: redis.SentinelView | None = None
    haproxies: tuple[haproxy.HaproxyView, ...] = ()
    silent_haproxies: tuple[str, ...] = ()  # containers whose stats socket did not answer
    health: pretix.HealthCheck | None = None
    rooms: tuple[WaitingRoomView, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    # The rows of `status`'s tables and of `status --json`, under the names cli.py reads.

    @property
    def services(self) -> list[dict[str, Any]]:
        return [asdict(s) | {"healthy": s.healthy} for s in self.service_states]

    @property
    def etcd(self) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.etcd_members or ()]

    @property
    def patroni(self) -> list[dict[str, Any]]:
        return self.cluster_view.to_json() if self.cluster_view else []

    @property
    def redis(self) -> list[dict[str, Any]]:
        if self.sentinel is None:
            return []
        master = self.sentinel.master
        rows = [{"name": master.name, "role": "master", "flags": master.flags, "link": "-"}]
        rows += [
            {"name": r.name, "role": "replica", "flags": r.flags, "link": r.link}
            for r in self.sentinel.replicas
        ]
        return rows

    @property
    def haproxy(self) -> list[dict[str, Any]]:
        return [
            {"haproxy": v.task, "backend": s.backend, "server": s.server, "status": s.status}
            for v in self.haproxies
            for s in v.servers
        ]

    @property
    def waiting_room(self) -> list[dict[str, Any]]:
        return [{"nginx": v.task} | v.room.to_json() for v in self.rooms]

    @property
    def healthcheck(self) -> dict[str, Any]:
        return self.health.to_json() if self.health else {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "services": self.services,
            "etcd": self.etcd,
            "patroni": self.patroni,
            "redis": self.redis,
            "haproxy": self.haproxy,
            "waiting_room": self.waiting_room,
            "healthcheck": self.healthcheck,
            "problems": list(self.problems),
            "healthy": self.healthy,
        }


def collect(cluster: Cluster) -> Status:
    services = tuple(swarm.service_states(cluster.client, cluster.stack))
    if not services:
        return Status(problems=(f"stack {cluster.stack} is not deployed",))
    containers = swarm.running_containers(cluster.client, cluster.stack, "haproxy")
    views = {c.name: haproxy_view(c) for c in containers}
    status = Status(
        service_states=services,
        etcd_members=etcd_health(cluster),
        cluster_view=patroni_view(cluster),
        sentinel=sentinel_view(cluster),
        haproxies=tuple(v for v in views.values() if v is not None),
        silent_haproxies=tuple(name for name, view in views.items() if view is None),
        health=healthcheck(cluster),
        rooms=waiting_rooms(cluster),
    )
    return replace(status, problems=tuple(problems(status, cluster.spec)))


def problems(status: Status, spec: ClusterSpec) -> list[str]:
    """Everything that keeps the cluster from the spec's healthy shape, layer by layer."""
    found = [
        f"{s.name}: {s.running}/{s.desired} running" for s in status.service_states if not s.healthy
    ]
    if status.etcd_members is None:
        found.append("no etcd member answers")
    else:
        found += etcd.health_problems(status.etcd_members, spec.etcd.members)
    if status.cluster_view is None:
        found.append("no Patroni node answers")
    else:
        found += status.cluster_view.problems(spec.postgres.nodes, spec.postgres.synchronous)
    if status.sentinel is None:
        found.append("no Sentinel answers")
    else:
        found += status.sentinel.problems(spec.redis.nodes)
    found += [f"HAProxy {name[:30]} does not answer" for name in status.silent_haproxies]
    for view in status.haproxies:
        found += view.problems()
    if status.health is not None and not status.health.ok:
        found.append(f"pretix /healthcheck/ through nginx: {status.health.to_json()}")
    return found
