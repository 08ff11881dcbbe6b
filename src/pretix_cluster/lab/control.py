"""The lab's life: up (create or repair), status, kill and start of a node, down.

The lab always lives on this machine's own daemon (its local socket), whatever
DOCKER_HOST says: DOCKER_HOST is the variable that points every other command
into the lab (`lab env`), so it may name a lab node right now. Every object the
lab makes carries its labels; a same-named object without them is someone
else's and makes the command stop before it changes anything.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

from pretix_cluster.errors import UserError
from pretix_cluster.lab import membership, nodes, registry
from pretix_cluster.lab.addresses import MAX_NODES, LabAddresses, choose_subnet, host_routes
from pretix_cluster.lab.images import ensure_lab_images
from pretix_cluster.lab.membership import SwarmNode
from pretix_cluster.lab.names import INDEX_LABEL, NETWORK_ROLE, NODE_ROLE, REGISTRY_ROLE, LabNames
from pretix_cluster.lab.nodes import NodePlan
from pretix_cluster.lab.registry import Registry
from pretix_cluster.render.registry import CERTS_D

HOST_DAEMON = "unix:///var/run/docker.sock"
STOP_TIMEOUT = 20
# A manager answers slowly while the swarm elects a new leader (seconds after a node dies).
STATUS_TIMEOUT = 15

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabSpec:
    name: str = "lab"
    nodes: int = 3
    subnet: str | None = None  # None: the first free /24 of addresses.CANDIDATE_SUPERNET
    shared_dir: Path | None = None  # a host directory seen by every node at NODE_SHARED_DIR

    def validate(self) -> LabNames:
        if self.nodes < 1:
            raise UserError(f"A lab needs at least one node, not {self.nodes}; use --nodes 3.")
        if self.nodes == 2:
            raise UserError(
                "Two managers have no majority that survives a loss; "
                "use --nodes 3 (or more), or --nodes 1 for a single machine."
            )
        if self.nodes > MAX_NODES:
            raise UserError(f"A lab has at most {MAX_NODES} nodes on one machine; use fewer.")
        if self.shared_dir is not None and not self.shared_dir.is_dir():
            raise UserError(f"The shared directory {self.shared_dir} does not exist; create it.")
        if self.subnet is not None:
            LabAddresses.parse(self.subnet)
        return LabNames.checked(self.name)


@dataclass(frozen=True)
class LabNode:
    """A lab machine: its container on the host, and its entry in the swarm (None: absent)."""

    index: int
    name: str
    container: str  # running | exited | created | ... | absent
    ip: str
    docker_host: str
    swarm: SwarmNode | None = None

    @property
    def ready(self) -> bool:
        return self.container == "running" and self.swarm is not None and self.swarm.ready


@dataclass(frozen=True)
class LabStatus:
    name: str
    subnet: str
    registry: Registry | None  # None when it is not running
    nodes: list[LabNode] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return bool(self.nodes) and self.registry is not None and all(n.ready for n in self.nodes)

    @property
    def docker_host(self) -> str | None:
        """DOCKER_HOST for commands run against the lab: the leader, else a ready manager."""
        managers = [n for n in self.nodes if n.ready and n.swarm.role == "manager"]
        managers.sort(key=lambda n: (not n.swarm.leader, n.index))
        return managers[0].docker_host if managers else None

    def as_dict(self) -> dict:
        return asdict(self) | {"healthy": self.healthy, "docker_host": self.docker_host}


def host_client() -> docker.DockerClient:
    try:
        client = docker.DockerClient(base_url=HOST_DAEMON, timeout=300)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        first_line = str(exc).splitlines()[0][:160]
        raise UserError(
            f"This machine's Docker daemon is not reachable at {HOST_DAEMON} ({first_line}); "
            "start it (`make up` does, or run `dockerd &` as root) and try again."
        ) from None


# --- up ------------------------------------------------------------------------------------


def up(spec: LabSpec, progress: Progress) -> LabStatus:
    names = spec.validate()
    host = host_client()
    _refuse_foreign(host, names, spec.nodes)
    existing = _node_containers(host, names)
    if len(existing) > spec.nodes:
        raise UserError(
            f"Lab '{names.lab}' has {len(existing)} nodes; pass --nodes {len(existing)} "
            "(a lab does not shrink), or `lab down --purge` first."
        )
    _refuse_other_shared_dir(names, existing, spec.shared_dir)
    node_image, registry_image = ensure_lab_images(host, progress)
    addresses = _ensure_network(host, names, spec.subnet, progress)
    registry.ensure_registry(host, names, addresses, registry_image, progress)
    for index in range(1, spec.nodes + 1):
        plan = NodePlan(names, addresses, index, node_image, spec.shared_dir)
        _ensure_node_running(host, plan, existing.get(index), progress)
    clients = {
        index: nodes.wait_api(addresses.docker_host(index), names.node(index))
        for index in range(1, spec.nodes + 1)
    }
    _form_swarm(names, addresses, clients, progress)
    return status(names.lab)


def _refuse_foreign(host: docker.DockerClient, names: LabNames, count: int) -> None:
    """Stop before creating anything if a name the lab needs belongs to something else."""
    wanted = [(names.network, NETWORK_ROLE, host.networks.list(names=[names.network]))]
    for index in range(1, count + 1):
        wanted.append((names.node(index), NODE_ROLE, _containers_named(host, names.node(index))))
        wanted.append((names.disk(index), NODE_ROLE, _volumes_named(host, names.disk(index))))
    wanted.append((names.registry, REGISTRY_ROLE, _containers_named(host, names.registry)))
    wanted.append(
        (names.registry_volume, REGISTRY_ROLE, _volumes_named(host, names.registry_volume))
    )
    for name, role, found in wanted:
        for item in found:
            if item.name == name and not names.is_ours(_labels(item), role):
                raise UserError(
                    f"A Docker object named '{name}' exists and was not made by lab "
                    f"'{names.lab}'; pick another lab name with --name."
                )


def _refuse_other_shared_dir(
    names: LabNames, existing: dict[int, Container], shared_dir: Path | None
) -> None:
    """A container's mounts are fixed at creation: a different shared directory needs new ones."""
    wanted = str(shared_dir.resolve()) if shared_dir else None
    for container in existing.values():
        mounted = nodes.shared_dir_of(container.attrs)
        if mounted != wanted:
            raise UserError(
                f"The nodes of lab '{names.lab}' were created with shared directory "
                f"{mounted or 'none'}, not {wanted or 'none'}; run `lab down` (it keeps their "
                "disks) and `lab up` again to recreate them with it."
            )


def _labels(item) -> dict[str, str]:
    """Containers keep their labels under Config; networks and volumes at the top."""
    return item.attrs.get("Labels") or item.attrs.get("Config", {}).get("Labels") or {}


def _containers_named(host: docker.DockerClient, name: str) -> list:
    return host.containers.list(all=True, filters={"name": f"^/{name}$"})


def _volumes_named(host: docker.DockerClient, name: str) -> list:
    return [v for v in host.volumes.list(filters={"name": name}) if v.name == name]


def _node_containers(host: docker.DockerClient, names: LabNames) -> dict[int, Container]:
    found = host.containers.list(all=True, filters=names.filters(NODE_ROLE))
    return {int(c.labels[INDEX_LABEL]): c for c in found}


def _ensure_network(
    host: docker.DockerClient, names: LabNames, subnet: str | None, progress: Progress
) -> LabAddresses:
    found = host.networks.list(filters=names.filters(NETWORK_ROLE))
    if found:
        return _network_addresses(found[0])
    if subnet is not None:
        addresses = LabAddresses.parse(subnet)
    else:
        addresses = choose_subnet(_docker_subnets(host) + host_routes())
    progress(f"network: creating {names.network} ({addresses.subnet})")
    ipam = docker.types.IPAMConfig(
        pool_configs=[
            docker.types.IPAMPool(subnet=str(addresses.subnet), gateway=addresses.gateway)
        ]
    )
    try:
        host.networks.create(
            names.network, driver="bridge", ipam=ipam, labels=names.labels(NETWORK_ROLE)
        )
    except docker.errors.APIError as exc:
        raise UserError(
            f"The lab network {addresses.subnet} cannot be created ({exc.explanation}); "
            "pass a free subnet with --subnet."
        ) from None
    return addresses


def _network_addresses(network) -> LabAddresses:
    return LabAddresses(ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"]))


def _docker_subnets(host: docker.DockerClient) -> list[ipaddress.IPv4Network]:
    subnets = []
    for network in host.networks.list():
        for pool in (network.attrs.get("IPAM") or {}).get("Config") or []:
            if "Subnet" in pool and ":" not in pool["Subnet"]:
                subnets.append(ipaddress.ip_network(pool["Subnet"]))
    return subnets


def _ensure_node_running(
    host: docker.DockerClient, plan: NodePlan, container, progress: Progress
) -> None:
    if container is None:
        progress(f"{plan.name}: creating ({plan.ip})")
        nodes.create_node(host, plan)
        container = host.containers.get(plan.name)
    if container.status != "running":
        progress(f"{plan.name}: starting")
        container.start()


def _form_swarm(
    names: LabNames,
    addresses: LabAddresses,
    clients: dict[int, docker.DockerClient],
    progress: Progress,
) -> None:
    states = {index: membership.local_state(client) for index, client in clients.items()}
    for index, state in states.items():
        if state not in ("active", "inactive"):
            raise UserError(
                f"{names.node(index)}'s swarm state is '{state}'; "
                f"run `lab down` and `lab up` to recreate the lab."
            )
    members = [i for i, s in states.items() if s == "active"]
    if not members:
        progress(f"swarm: initialising on {names.node(1)}")
        membership.initialise(clients[1], addresses.node(1))
        members = [1]
    leader_index = next((i for i in members if membership.is_manager(clients[i])), None)
    if leader_index is None:
        raise UserError(
            f"No node of lab '{names.lab}' is a working swarm manager; "
            "run `lab down --purge` and `lab up` to start the lab afresh."
        )
    managers = membership.manager_count(len(clients))
    for index, client in clients.items():
        if states[index] == "active" or index in members:
            continue
        role = "manager" if index <= managers else "worker"
        progress(f"swarm: {names.node(index)} joins as {role}")
        membership.join(
            client, clients[leader_index], addresses.node(leader_index), addresses.node(index), role
        )
    manager = clients[leader_index]
    membership.wait_ready(manager, [names.node(i) for i in clients], progress)
    live_ids = [client.info()["Swarm"]["NodeID"] for client in clients.values()]
    for entry in membership.remove_stale_entries(manager, live_ids):
        progress(f"swarm: removed the stale entry {entry}")


# --- status --------------------------------------------------------------------------------


def status(name: str) -> LabStatus:
    names = LabNames.checked(name)
    host = host_client()
    network = host.networks.list(filters=names.filters(NETWORK_ROLE))
    if not network:
        raise UserError(f"There is no lab '{names.lab}'; start one with `pretix-cluster lab up`.")
    addresses = _network_addresses(network[0])
    containers = _node_containers(host, names)
    swarm_view = _swarm_view(addresses, containers)
    return LabStatus(
        name=names.lab,
        subnet=str(addresses.subnet),
        registry=registry.find_registry(host, names, addresses),
        nodes=[
            LabNode(
                index=index,
                name=names.node(index),
                container=container.status,
                ip=addresses.node(index),
                docker_host=addresses.docker_host(index),
                swarm=swarm_view.get(names.node(index)),
            )
            for index, container in sorted(containers.items())
        ],
    )


def _swarm_view(addresses: LabAddresses, containers: dict) -> dict[str, SwarmNode]:
    """The swarm as the first running manager that answers sees it, by hostname."""
    for index, container in sorted(containers.items()):
        if container.status != "running":
            continue
        try:
            client = nodes.node_client(addresses.docker_host(index), timeout=STATUS_TIMEOUT)
            if membership.is_manager(client):
                return {n.hostname: n for n in membership.swarm_nodes(client)}
        except nodes.UNREACHABLE:
            continue
    return {}


def push_images(name: str, images: list[str], progress: Progress) -> dict[str, str]:
    """Push local images to the lab's registry; local name -> the name every node pulls."""
    lab = status(name)
    if lab.registry is None:
        raise UserError(f"The registry of lab '{name}' is not running; run `lab up` first.")
    return registry.push_images(host_client(), lab.registry, images, progress)


# --- one node: kill and start ---------------------------------------------------------------


def kill_node(name: str, node: str) -> str:
    """The machine dies: its daemon and every container on it stop at once (SIGKILL).

    Returns the node's name as soon as it is dead; the swarm notices over the next
    heartbeats (`status` shows it Down), which a caller timing a failover measures.
    """
    names = LabNames.checked(name)
    container = _node_container(host_client(), names, node)
    if container.status == "running":
        container.kill()
    return container.name


def start_node(name: str, node: str, progress: Progress) -> LabNode:
    """The machine comes back on its disk; its daemon rejoins the swarm by itself."""
    names = LabNames.checked(name)
    host = host_client()
    container = _node_container(host, names, node)
    if container.status != "running":
        progress(f"{container.name}: starting")
        container.start()
    before = status(names.lab)
    this = _one(before, container.name)
    nodes.wait_api(this.docker_host, this.name)
    others = [n for n in before.nodes if n.ready and n.swarm.role == "manager" and n is not this]
    # Ask another manager when one answers: the swarm's view, not the node's own opinion.
    watcher = others[0] if others else this
    membership.wait_ready(nodes.node_client(watcher.docker_host), [this.name], progress)
    return _one(status(names.lab), container.name)


def node_container(name: str, node: str):
    """The container that is the lab machine ``node`` (for faults done to the machine)."""
    return _node_container(host_client(), LabNames.checked(name), node)


def _node_container(host: docker.DockerClient, names: LabNames, node: str):
    index = names.node_index(node)
    containers = _node_containers(host, names)
    if index not in containers:
        known = ", ".join(names.node(i) for i in sorted(containers)) or "none"
        raise UserError(
            f"Lab '{names.lab}' has no node {node} (its nodes: {known}); "
            "see `pretix-cluster lab status`."
        )
    return containers[index]


def _one(lab: LabStatus, node_name: str) -> LabNode:
    return next(n for n in lab.nodes if n.name == node_name)


# --- down ----------------------------------------------------------------------------------


def _forget_registry_trust(addresses: LabAddresses) -> None:
    """This machine's trust in a managed registry on a lab machine (lab/deploy.py) goes
    with the machines."""
    for index in range(1, MAX_NODES + 1):
        for folder in Path(CERTS_D).glob(f"{addresses.node(index)}:*"):
            shutil.rmtree(folder, ignore_errors=True)


def down(name: str, purge: bool, progress: Progress) -> None:
    """Remove nodes, registry and network; with purge also the nodes' disks and the images."""
    names = LabNames.checked(name)
    host = host_client()
    for container in host.containers.list(all=True, filters=names.filters(NODE_ROLE)):
        if container.status == "running" and not purge:
            # SIGTERM: dockerd stops its containers and leaves the swarm state on disk intact.
            progress(f"{container.name}: stopping")
            container.stop(timeout=STOP_TIMEOUT)
        progress(f"{container.name}: removing")
        container.remove(force=True)
    for container in host.containers.list(all=True, filters=names.filters(REGISTRY_ROLE)):
        progress(f"{container.name}: removing")
        container.remove(force=True)
    for network in host.networks.list(filters=names.filters(NETWORK_ROLE)):
        _forget_registry_trust(_network_addresses(network))
        progress(f"network {network.name}: removing")
        network.remove()
    if purge:
        for role in (NODE_ROLE, REGISTRY_ROLE):
            for volume in host.volumes.list(filters=names.filters(role)):
                progress(f"volume {volume.name}: removing")
                volume.remove(force=True)
