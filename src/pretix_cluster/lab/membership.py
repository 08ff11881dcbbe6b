"""The lab's swarm: who is in it and in which state, as the swarm itself sees it.

Every node joins as a manager up to the largest odd count (3 of 3, 3 of 4, 5
of 5): a majority of managers keeps the swarm managing when one machine dies,
and an even count adds a vote without adding a loss it survives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import docker
import docker.errors

from pretix_cluster.errors import UserError

SWARM_PORT = 2377
MAX_MANAGERS = 7
READY_TIMEOUT = 120

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SwarmNode:
    """One entry of `docker node ls` / `docker node inspect`."""

    id: str
    hostname: str
    role: str  # manager | worker
    availability: str  # active | pause | drain
    state: str  # ready | down | unknown | disconnected
    address: str
    leader: bool
    reachability: str  # reachable | unreachable | unknown; "" for a worker

    @classmethod
    def from_inspect(cls, attrs: dict) -> SwarmNode:
        manager = attrs.get("ManagerStatus") or {}
        return cls(
            id=attrs["ID"],
            hostname=attrs["Description"]["Hostname"],
            role=attrs["Spec"]["Role"],
            availability=attrs["Spec"]["Availability"],
            state=attrs["Status"]["State"],
            address=attrs["Status"].get("Addr", ""),
            leader=bool(manager.get("Leader", False)),
            reachability=manager.get("Reachability", ""),
        )

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.availability == "active"


def manager_count(nodes: int) -> int:
    """The largest odd number of managers the nodes allow (at most 7, Docker's advice)."""
    return min(nodes if nodes % 2 else nodes - 1, MAX_MANAGERS)


def local_state(client: docker.DockerClient) -> str:
    """The node's own view: inactive, pending, active, error or locked."""
    return client.info().get("Swarm", {}).get("LocalNodeState", "inactive")


def is_manager(client: docker.DockerClient) -> bool:
    return bool(client.info().get("Swarm", {}).get("ControlAvailable"))


def swarm_nodes(manager: docker.DockerClient) -> list[SwarmNode]:
    return [SwarmNode.from_inspect(node.attrs) for node in manager.nodes.list()]


def initialise(client: docker.DockerClient, address: str) -> None:
    client.swarm.init(advertise_addr=address, listen_addr=f"{address}:{SWARM_PORT}")


def join(
    client: docker.DockerClient,
    manager: docker.DockerClient,
    manager_ip: str,
    address: str,
    role: str,
) -> None:
    manager.swarm.reload()
    token = manager.swarm.attrs["JoinTokens"]["Manager" if role == "manager" else "Worker"]
    client.swarm.join(
        remote_addrs=[f"{manager_ip}:{SWARM_PORT}"],
        join_token=token,
        advertise_addr=address,
        listen_addr=f"{address}:{SWARM_PORT}",
    )


def stale_entries(nodes: list[SwarmNode], live_ids: Iterable[str]) -> list[SwarmNode]:
    """Entries left by a node that came back on a fresh disk: its hostname, an old ID.

    The lab nodes' own daemons say which IDs are alive; the swarm may still call
    an old entry Ready for a few heartbeats, so its state decides nothing.
    """
    live = set(live_ids)
    live_hostnames = {n.hostname for n in nodes if n.id in live}
    return [n for n in nodes if n.id not in live and n.hostname in live_hostnames]


def remove_stale_entries(manager: docker.DockerClient, live_ids: Iterable[str]) -> list[str]:
    removed = []
    for node in stale_entries(swarm_nodes(manager), live_ids):
        if node.role == "manager":
            # Swarm removes only workers: demote first, out of the managers' quorum.
            entry = manager.nodes.get(node.id)
            entry.update(dict(entry.attrs["Spec"], Role="worker"))
        _remove_when_demoted(manager, node.id)
        removed.append(f"{node.hostname} ({node.id[:12]})")
    return removed


def _remove_when_demoted(manager: docker.DockerClient, node_id: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            manager.api.remove_node(node_id, force=True)
            return
        except docker.errors.APIError:
            # The demotion leaves the raft group asynchronously.
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def wait_ready(
    manager: docker.DockerClient,
    hostnames: Iterable[str],
    progress: Progress,
    timeout: float = READY_TIMEOUT,
) -> list[SwarmNode]:
    """Wait until each hostname has a Ready, active entry in the manager's view."""
    wanted = set(hostnames)
    deadline = time.monotonic() + timeout
    while True:
        try:
            nodes = swarm_nodes(manager)
        except docker.errors.APIError:
            nodes = []  # a manager that just (re)joined answers before it has a leader
        missing = sorted(wanted - {n.hostname for n in nodes if n.ready})
        if not missing:
            return nodes
        if time.monotonic() > deadline:
            raise UserError(
                f"{', '.join(missing)} did not become Ready in the swarm within {timeout:.0f} s; "
                "see `pretix-cluster lab status`, then run `lab up` again."
            )
        progress(f"swarm: waiting for {', '.join(missing)} to be Ready")
        time.sleep(1)
