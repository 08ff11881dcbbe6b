"""`nodes`: the swarm's machines as the cluster uses them, and giving one up for good.

A node that dies and comes back keeps its members (their data is on its disk).
A node that is gone for good is removed from the swarm here; `up` then places
its members on the remaining nodes, where they rebuild their data from their
peers: an etcd member is replaced in the running etcd cluster by its own
entrypoint (member remove/add, state ``existing``), a Patroni node clones the
leader, a Redis node resyncs from the master, a Sentinel learns the master.
"""

from __future__ import annotations

from collections.abc import Callable

from pretix_cluster import bootstrap, swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.render.placement import Node

Progress = Callable[[str], None]


def list_nodes(cluster: Cluster) -> list[Node]:
    return sorted(swarm.nodes(cluster.client), key=lambda n: n.hostname)


def remove_node(cluster: Cluster, hostname: str, progress: Progress) -> bootstrap.UpResult:
    """Take a dead node out of the swarm, then re-place its members with `up`."""
    nodes = list_nodes(cluster)
    node = next((n for n in nodes if n.hostname == hostname), None)
    if node is None:
        known = ", ".join(n.hostname for n in nodes)
        raise UserError(f"The swarm has no node {hostname} (its nodes: {known}); check the name.")
    if node.ready:
        raise UserError(
            f"Node {hostname} is up; shut the machine down (or `docker swarm leave` on it) "
            "before removing it, so that no member runs twice."
        )
    remaining = [n for n in nodes if n.id != node.id]
    # Refuse now, before the swarm changes, when the rest cannot hold the cluster.
    cluster.topology.placement(cluster.spec, remaining)
    if node.role == "manager":
        progress(f"demoting {hostname}")
        swarm.demote_node(cluster.client, node.id)
    progress(f"removing {hostname} from the swarm ({', '.join(node.members(cluster.stack))})")
    swarm.remove_node(cluster.client, node.id)
    return bootstrap.up(cluster, progress)
