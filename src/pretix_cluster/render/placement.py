"""Which Swarm node runs what: stateful members pinned by node labels, the rest spread.

A stateful member (etcd-N, pg-N, redis-N, sentinel-N) keeps its data on a
node-local volume, so it must always run on the same node: the tool labels that
node ``pretix-cluster.<stack>.<member>=true`` and the member's service is
constrained to the label. Labels are sticky: a member stays where its data is,
also while that node is down (its task waits for it, and the other members of
its kind carry on). Only a node that has left the swarm gives its members up;
they are placed anew and rebuild their data from their peers.

On several eligible nodes, members of one kind go to distinct nodes (losing a
machine costs each kind one member at most); with one eligible node everything
runs there, as on a single-node swarm. nginx runs on every entry node
(``pretix-cluster.<stack>.entry``), which publishes the shop's port; web,
worker and HAProxy replicas are spread over the nodes by Swarm.

The plan is a pure function of the spec and the nodes; :mod:`pretix_cluster.swarm`
reads the nodes and applies the labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pretix_cluster.errors import UserError
from pretix_cluster.spec import ClusterSpec

LABEL_PREFIX = "pretix-cluster"
ENTRY = "entry"


def member_label(stack: str, member: str) -> str:
    return f"{LABEL_PREFIX}.{stack}.{member}"


def entry_label(stack: str) -> str:
    return f"{LABEL_PREFIX}.{stack}.{ENTRY}"


def label_constraint(label: str) -> str:
    return f"node.labels.{label} == true"


@dataclass(frozen=True)
class Node:
    """A Swarm node as placement sees it."""

    id: str
    hostname: str
    ready: bool
    labels: dict[str, str] = field(default_factory=dict)
    role: str = "manager"
    availability: str = "active"
    address: str = ""
    # Among managers: "leader", "reachable" or "unreachable"; "" for a worker.
    manager_status: str = ""

    @classmethod
    def from_inspect(cls, attrs: dict[str, Any]) -> Node:
        """From the Engine API's node object (`docker node inspect`)."""
        spec, status = attrs.get("Spec", {}), attrs.get("Status", {})
        manager = attrs.get("ManagerStatus") or {}
        return cls(
            id=attrs["ID"],
            hostname=attrs["Description"]["Hostname"],
            ready=status.get("State") == "ready",
            labels=dict(spec.get("Labels") or {}),
            role=spec.get("Role", ""),
            availability=spec.get("Availability", ""),
            address=status.get("Addr", ""),
            manager_status="leader" if manager.get("Leader") else manager.get("Reachability", ""),
        )

    def members(self, stack: str) -> list[str]:
        """The stack's stateful members this node holds (by its labels)."""
        prefix = member_label(stack, "")
        return sorted(
            key.removeprefix(prefix)
            for key, value in self.labels.items()
            if key.startswith(prefix) and value == "true" and key != entry_label(stack)
        )

    def is_entry(self, stack: str) -> bool:
        return self.labels.get(entry_label(stack)) == "true"


@dataclass(frozen=True)
class Plan:
    """Member -> node hostname, and the entry nodes."""

    members: dict[str, str]
    entry: list[str]

    def labels_by_node(self, stack: str, nodes: list[Node]) -> dict[str, dict[str, str]]:
        """The stack's labels each node must carry (by node id); other labels are kept."""
        wanted: dict[str, dict[str, str]] = {n.id: {} for n in nodes}
        by_host = {n.hostname: n.id for n in nodes}
        for member, host in self.members.items():
            wanted[by_host[host]][member_label(stack, member)] = "true"
        for host in self.entry:
            wanted[by_host[host]][entry_label(stack)] = "true"
        return wanted


def plan(spec: ClusterSpec, nodes: list[Node]) -> Plan:
    """Keep every member where its label says; place the others; refuse what cannot hold."""
    if not nodes:
        raise UserError("The swarm has no nodes; run `docker swarm init` or `up` again.")
    hostnames = [n.hostname for n in nodes]
    if len(nodes) > 1 and spec.media.kind == "volume":
        raise UserError(
            f'[media] kind = "volume" keeps pretix\'s media on one node, but web and worker '
            f"replicas run on all {len(nodes)} nodes of this swarm; set [media] kind to "
            "bind, nfs or s3 in cluster.toml."
        )
    eligible = _named_or_all(spec.placement.nodes, hostnames, "nodes")
    entry = _named_or_all(spec.placement.entry_nodes, hostnames, "entry_nodes")
    current = _current_members(spec.stack, nodes)
    ready = {n.hostname for n in nodes if n.ready}
    members: dict[str, str] = {}
    load = Counter({host: 0 for host in eligible})
    for kind, group in spec.member_groups.items():
        members |= _place_group(kind, group, eligible, current, load, ready)
    return Plan(members, entry)


def _named_or_all(named: list[str], hostnames: list[str], key: str) -> list[str]:
    unknown = [n for n in named if n not in hostnames]
    if unknown:
        raise UserError(
            f"[placement] {key} names {', '.join(unknown)}, which this swarm does not have "
            f"(its nodes: {', '.join(sorted(hostnames))}); fix cluster.toml."
        )
    return sorted(named or hostnames)


def _current_members(stack: str, nodes: list[Node]) -> dict[str, str]:
    """Where each member's label is now (a member labelled on two nodes keeps the first)."""
    found: dict[str, str] = {}
    for node in sorted(nodes, key=lambda n: n.hostname):
        for member in node.members(stack):
            found.setdefault(member, node.hostname)
    return found


def _place_group(
    kind: str,
    group: list[str],
    eligible: list[str],
    current: dict[str, str],
    load: Counter[str],
    ready: set[str],
) -> dict[str, str]:
    spread = len(eligible) > 1
    if spread and len(eligible) < len(group):
        raise UserError(
            f"{len(group)} {kind} members need {len(group)} nodes, each on its own, but "
            f"{len(eligible)} are eligible ({', '.join(eligible)}); add nodes, lower the "
            "member count, or name one node in [placement] nodes to run everything there."
        )
    placed: dict[str, str] = {}
    for member in group:
        host = current.get(member)
        if host is None:
            continue
        if host not in eligible:
            raise UserError(
                f"{member} keeps its data on node {host}, which [placement] nodes does not "
                f"list; list {host} again, or remove that node from the swarm so that "
                f"{member} is rebuilt elsewhere."
            )
        if spread and host in placed.values():
            continue  # two members of a kind on one node: the later one moves
        placed[member] = host
        load[host] += 1
    for member in group:
        if member in placed:
            continue
        free = [h for h in eligible if not (spread and h in placed.values())]
        # A node that is down now would leave the new member waiting: ready ones first.
        host = min(free, key=lambda h: (h not in ready, load[h], h))
        placed[member] = host
        load[host] += 1
    return placed
