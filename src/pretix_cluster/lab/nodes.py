"""Lab nodes: containers on the host's daemon, each running a Docker daemon of its own.

Run flags from the recipe in the lab notes: every capability but
CAP_SYS_RESOURCE (the sandbox lacks it, so --privileged fails), no seccomp or
AppArmor profile, the host's cgroup tree writable, /run a tmpfs (so a killed
daemon leaves no stale pid file), and a named volume as the node's disk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from pretix_cluster.errors import UserError
from pretix_cluster.lab.addresses import DOCKER_API_PORT, LabAddresses
from pretix_cluster.lab.names import NODE_ROLE, LabNames

# Where the host's shared directory appears in every node, for bind mounts of lab services.
NODE_SHARED_DIR = "/srv/pretix-cluster-shared"
API_TIMEOUT = 30
# What a node's API raises when its daemon is gone or busy (a read timeout is no DockerException).
UNREACHABLE = (docker.errors.DockerException, requests.exceptions.RequestException)


@dataclass(frozen=True)
class NodePlan:
    """Everything that decides how node `index` of a lab is created."""

    names: LabNames
    addresses: LabAddresses
    index: int
    image: str
    shared_dir: Path | None = None

    @property
    def name(self) -> str:
        return self.names.node(self.index)

    @property
    def ip(self) -> str:
        return self.addresses.node(self.index)

    def dockerd_args(self) -> list[str]:
        # --tls=false says "plain TCP on purpose": without it dockerd 20.10 waits 15 s to warn.
        return [
            "--host=unix:///var/run/docker.sock",
            f"--host=tcp://{self.ip}:{DOCKER_API_PORT}",
            "--tls=false",
            f"--insecure-registry={self.addresses.registry_address}",
        ]

    def command(self) -> list[str]:
        """The entrypoint's arguments: who may reach the API, on which port, then dockerd's."""
        return [self.addresses.gateway, str(DOCKER_API_PORT), *self.dockerd_args()]

    def create_kwargs(self) -> dict:
        """Arguments of containers.create, except the network endpoint (see create_node)."""
        volumes = {
            "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
            self.names.disk(self.index): {"bind": "/var/lib/docker", "mode": "rw"},
        }
        if self.shared_dir is not None:
            volumes[str(self.shared_dir.resolve())] = {"bind": NODE_SHARED_DIR, "mode": "rw"}
        return {
            "image": self.image,
            "command": self.command(),
            "name": self.name,
            "hostname": self.name,
            "labels": self.names.labels(NODE_ROLE, self.index),
            "cap_add": ["ALL"],
            "cap_drop": ["SYS_RESOURCE"],
            "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
            "tmpfs": {"/run": ""},
            "volumes": volumes,
            "network": self.names.network,
            "detach": True,
        }


def shared_dir_of(container_attrs: dict) -> str | None:
    """The host directory a node container sees as NODE_SHARED_DIR, if any."""
    for mount in container_attrs.get("Mounts", []):
        if mount.get("Destination") == NODE_SHARED_DIR:
            return mount.get("Source")
    return None


def create_node(host: docker.DockerClient, plan: NodePlan) -> None:
    endpoint = host.api.create_endpoint_config(ipv4_address=plan.ip)
    host.volumes.create(
        plan.names.disk(plan.index), labels=plan.names.labels(NODE_ROLE, plan.index)
    )
    host.containers.create(**plan.create_kwargs(), networking_config={plan.names.network: endpoint})


def node_client(docker_host: str, timeout: int = 60) -> docker.DockerClient:
    return docker.DockerClient(base_url=docker_host, timeout=timeout)


def wait_api(docker_host: str, name: str, timeout: float = API_TIMEOUT) -> docker.DockerClient:
    """A client of the node's daemon once it answers (about 2 s after its container starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client = node_client(docker_host)
            client.ping()
            return client
        except UNREACHABLE:
            if time.monotonic() > deadline:
                raise UserError(
                    f"The Docker daemon of {name} ({docker_host}) did not answer within "
                    f"{timeout:.0f} s; see `docker logs {name}`, then run `lab up` again."
                ) from None
            time.sleep(0.5)
