"""The chaos scenarios, each choosing its target from the live cluster.

A target is whatever holds the role *now*: Patroni's leader or synchronous
standby, Sentinel's master, the etcd leader, a running web/worker/HAProxy/nginx
task, or the machine running one of those (a lab node: scenarios 12-14), or
several members at once (a majority of etcd, every PostgreSQL node). Names
come from the spec (service names, node names, network labels); nothing here
restates them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass

from docker.models.containers import Container

from pretix_cluster import status, swarm
from pretix_cluster.chaos import faults
from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons import etcd, patroni
from pretix_cluster.errors import UserError
from pretix_cluster.lab.names import DEFAULT_LAB
from pretix_cluster.spec import PORTS


@dataclass(frozen=True)
class Target:
    """What a scenario hits: the service holding it, its name in the cluster, its container."""

    service: str  # Swarm service, short name ("pg-2", "web")
    node: str  # Patroni member / Redis node / HAProxy server name; the service otherwise
    role: str  # what it was when chosen ("primary", "sync standby", "master", "replica")
    container: Container | None
    machine: str | None = None  # the Swarm node (lab machine) it runs on, for machine faults
    members: tuple[str, ...] = ()  # every member a fault of several hits (services)


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    title: str
    watch: str  # analysis.Watch kind
    pick: Callable[[Cluster], Target]
    fault: Callable[[Cluster, Target], faults.Fault]
    # For faults that must be undone: heal this long after the repair was seen,
    # and at the latest after ``max_fault_s`` (bounded whatever happens).
    heal_after_repair_s: float = 10.0
    max_fault_s: float = 60.0
    # The fault takes a whole machine: it needs a lab, and the tool must talk to the
    # swarm through another machine than the one it takes.
    machine: bool = False
    # Promises judged beyond recovery: purchases complete while the fault lasts, and
    # Swarm replaces no task of these services (the application tier rides it out).
    keeps_selling: bool = False
    keeps_tasks: tuple[str, ...] = ()
    # Drawn by `chaos soak` (when it applies here, see ``applicable``): a fault that one
    # machine's cluster heals by itself under load. Not the Docker daemon's restart.
    soak: bool = True


def _container(cluster: Cluster, service: str) -> Container:
    containers = sorted(
        swarm.running_containers(cluster.client, cluster.stack, service), key=lambda c: c.name
    )
    if not containers:
        raise UserError(f"no running task of {cluster.spec.service_name(service)}: run `up` first.")
    return containers[0]


def _patroni_role(cluster: Cluster, role: str, label: str) -> Target:
    view = status.patroni_view(cluster)
    names = [m.name for m in (view.with_role(role) if view else ()) if m.name]
    if len(names) != 1:
        raise UserError(f"Patroni reports {len(names)} {label}s; the cluster must be healthy.")
    return Target(names[0], names[0], label, _container(cluster, names[0]))


def pg_primary(cluster: Cluster) -> Target:
    return _patroni_role(cluster, patroni.LEADER, "primary")


def pg_sync_standby(cluster: Cluster) -> Target:
    return _patroni_role(cluster, patroni.SYNC_STANDBY, "sync standby")


def redis_master(cluster: Cluster) -> Target:
    view = status.sentinel_view(cluster)
    master = view.master.name if view else None
    if master not in cluster.spec.redis_nodes:
        raise UserError(f"Sentinel names {master!r} as the master, not a Redis node of the spec.")
    return Target(master, master, "master", _container(cluster, master))


def etcd_member(cluster: Cluster) -> Target:
    """The etcd leader (the harder case: an election follows), else the first member."""
    spec = cluster.spec
    members = spec.etcd_members
    statuses = etcd.probe_status(status.cluster_exec(cluster), members, PORTS.etcd_client)
    leader = etcd.leader_of(statuses or (), members)
    member = leader or members[0]
    return Target(
        member, member, "member" if leader is None else "leader", _container(cluster, member)
    )


def etcd_majority(cluster: Cluster) -> Target:
    """Just enough etcd members to take its quorum away, the leader first."""
    members = cluster.spec.etcd_members
    leader = etcd_member(cluster).service
    chosen = tuple(sorted(members, key=lambda m: m != leader)[: len(members) // 2 + 1])
    return Target("etcd", "+".join(chosen), "majority", None, members=chosen)


def every_pg_node(cluster: Cluster) -> Target:
    nodes = tuple(cluster.spec.pg_nodes)
    return Target("postgres", "+".join(nodes), "every node", None, members=nodes)


def replica_of(service: str) -> Callable[[Cluster], Target]:
    def pick(cluster: Cluster) -> Target:
        return Target(service, service, "replica", _container(cluster, service))

    return pick


def machine_of(pick: Callable[[Cluster], Target]) -> Callable[[Cluster], Target]:
    """The machine (Swarm node) running what ``pick`` chooses."""

    def pick_machine(cluster: Cluster) -> Target:
        target = pick(cluster)
        machine = swarm.task_node(cluster.client, cluster.stack, target.service)
        if machine is None:
            raise UserError(f"{target.service} runs on no node the swarm knows; run `status`.")
        return dataclasses.replace(target, role=f"machine of the {target.role}", machine=machine)

    return pick_machine


def lab_name() -> str:
    """The lab whose machines the machine faults take (PRETIX_LAB, as for `lab`)."""
    return os.environ.get("PRETIX_LAB", DEFAULT_LAB)


def kill_machine(cluster: Cluster, target: Target) -> faults.Fault:
    assert target.machine is not None
    return faults.MachineKill(lab_name(), target.machine)


def partition_machine(cluster: Cluster, target: Target) -> faults.Fault:
    assert target.machine is not None
    return faults.machine_partition(lab_name(), target.machine)


def docker_daemon(cluster: Cluster) -> Target:
    return Target("*", "dockerd", "daemon", None)


def kill(cluster: Cluster, target: Target) -> faults.Fault:
    assert target.container is not None
    return faults.Kill(target.container)


def partition(cluster: Cluster, target: Target) -> faults.Fault:
    assert target.container is not None
    return faults.Partition(target.container)


def freeze(cluster: Cluster, target: Target) -> faults.Fault:
    assert target.container is not None
    return faults.Freeze(target.container)


def freeze_members(cluster: Cluster, target: Target) -> faults.Fault:
    return faults.AllOf([faults.Freeze(_container(cluster, m)) for m in target.members], "freeze")


def partition_members(cluster: Cluster, target: Target) -> faults.Fault:
    parts: list[faults.Fault] = [faults.Partition(_container(cluster, m)) for m in target.members]
    return faults.AllOf(parts, "partition")


def restart_daemon(cluster: Cluster, target: Target) -> faults.Fault:
    return faults.DaemonRestart()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(1, "pg-primary-kill", "PostgreSQL primary killed", "pg_primary", pg_primary, kill),
    Scenario(
        2,
        "pg-primary-partition",
        "PostgreSQL primary partitioned from etcd and its peers",
        "pg_primary",
        pg_primary,
        partition,
    ),
    Scenario(
        3,
        "pg-sync-replica-kill",
        "synchronous PostgreSQL replica killed",
        "pg_replica",
        pg_sync_standby,
        kill,
    ),
    Scenario(4, "redis-master-kill", "Redis master killed", "redis_master", redis_master, kill),
    Scenario(
        5,
        "redis-master-partition",
        "Redis master partitioned",
        "redis_master",
        redis_master,
        partition,
    ),
    Scenario(6, "etcd-member-kill", "one etcd member killed", "service", etcd_member, kill),
    Scenario(7, "web-kill", "a web replica killed mid-request", "service", replica_of("web"), kill),
    Scenario(
        8,
        "worker-kill",
        "a worker killed while processing orders",
        "service",
        replica_of("worker"),
        kill,
    ),
    Scenario(
        9, "haproxy-kill", "an HAProxy replica killed", "service", replica_of("haproxy"), kill
    ),
    Scenario(
        10,
        "nginx-kill",
        "nginx killed (the only entry point)",
        "service",
        replica_of("nginx"),
        kill,
    ),
    Scenario(
        11,
        "docker-restart",
        "the Docker daemon restarted",
        "daemon",
        docker_daemon,
        restart_daemon,
        soak=False,
    ),
    Scenario(
        12,
        "node-loss-primary",
        "the machine holding the PostgreSQL primary dies, and comes back",
        "pg_primary",
        machine_of(pg_primary),
        kill_machine,
        heal_after_repair_s=20.0,
        max_fault_s=120.0,
        machine=True,
    ),
    Scenario(
        13,
        "node-loss-master",
        "the machine holding the Redis master dies, and comes back",
        "redis_master",
        machine_of(redis_master),
        kill_machine,
        heal_after_repair_s=20.0,
        max_fault_s=120.0,
        machine=True,
    ),
    Scenario(
        14,
        "node-partition",
        "the machine holding the PostgreSQL primary cut off from the others",
        "pg_primary",
        machine_of(pg_primary),
        partition_machine,
        heal_after_repair_s=20.0,
        max_fault_s=90.0,
        machine=True,
    ),
    # A hung machine: the process neither answers nor dies, so Swarm restarts nothing
    # and only Patroni's ttl / Sentinel's down-after decide. The replica must be promoted.
    Scenario(
        15,
        "pg-primary-freeze",
        "PostgreSQL primary frozen (a hung machine)",
        "pg_primary",
        pg_primary,
        freeze,
    ),
    Scenario(
        16,
        "redis-master-freeze",
        "Redis master frozen (a hung machine)",
        "redis_master",
        redis_master,
        freeze,
    ),
    # Patroni's failsafe_mode: the primary keeps serving while every member answers it.
    Scenario(
        17,
        "etcd-quorum-loss",
        "a majority of etcd frozen for 60 s: sales go on",
        "etcd_quorum",
        etcd_majority,
        freeze_members,
        max_fault_s=60.0,
        keeps_selling=True,
    ),
    # Liveness is not readiness: the shop says 503 and no web/worker/cron task is replaced.
    Scenario(
        18,
        "pg-outage",
        "every PostgreSQL node cut off for 90 s: the application tier rides it out",
        "pg_outage",
        every_pg_node,
        partition_members,
        max_fault_s=90.0,
        keeps_tasks=("web", "worker", "cron"),
    ),
)


def applicable(scenario: Scenario, on_lab: bool) -> bool:
    """Machine scenarios need lab machines; restarting this machine's Docker daemon would
    take the whole lab down with it, so that one runs only on a cluster of this machine."""
    if scenario.machine:
        return on_lab
    return not (on_lab and scenario.watch == "daemon")


def select(names: list[str], on_lab: bool = False) -> list[Scenario]:
    """Scenarios by number or name, in the order given; ``all``: every one that applies."""
    if not names:
        raise UserError("name a scenario (see `pretix-cluster chaos list`) or `all`.")
    if "all" in names:
        return [s for s in SCENARIOS if applicable(s, on_lab)]
    by_key = {s.name: s for s in SCENARIOS} | {str(s.number): s for s in SCENARIOS}
    unknown = [n for n in names if n not in by_key]
    if unknown:
        raise UserError(
            f"unknown scenario {unknown[0]!r}: use a number 1-{len(SCENARIOS)}, a name from "
            "`pretix-cluster chaos list`, or `all`."
        )
    chosen = [by_key[n] for n in names]
    refused = [s for s in chosen if not applicable(s, on_lab)]
    if refused:
        where = "a lab (`pretix-cluster lab up`, then `eval $(pretix-cluster lab env)`)"
        raise UserError(
            f"scenario {refused[0].name} needs "
            + (where if refused[0].machine else "a cluster on this machine, not a lab")
            + "."
        )
    return chosen
