"""The lab's registry: Debian's docker-registry on the host's daemon, and pushing to it.

It listens on plain HTTP at <registry ip>:5000 on the lab's bridge, where
nodes pull (each node's dockerd lists it with --insecure-registry), and on
a random loopback port of the host, where the host's daemon pushes: Docker
speaks plain HTTP to loopback registries without configuration, and the
host's daemon cannot be reconfigured (restarted) under a running cluster.
Nothing else reaches it: it has no authentication.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import docker
import docker.errors
import httpx

from pretix_cluster.errors import UserError
from pretix_cluster.images.registry import push_image
from pretix_cluster.lab.addresses import REGISTRY_PORT, LabAddresses
from pretix_cluster.lab.names import REGISTRY_ROLE, LabNames

READY_TIMEOUT = 30

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Registry:
    """Where the lab's registry answers: for nodes (in image names) and for the host's pushes."""

    address: str  # <ip>:5000 on the lab bridge
    host_address: str  # 127.0.0.1:<port> on the host

    @classmethod
    def from_container(cls, container, addresses: LabAddresses) -> Registry:
        bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{REGISTRY_PORT}/tcp") or []
        if not bindings:
            raise UserError(
                f"The lab registry {container.name} publishes no port; "
                "run `lab down` and `lab up` to recreate it."
            )
        return cls(addresses.registry_address, f"127.0.0.1:{bindings[0]['HostPort']}")


def create_kwargs(names: LabNames, image: str) -> dict:
    """Arguments of containers.create, except the network endpoint (see ensure_registry)."""
    return {
        "image": image,
        "name": names.registry,
        "hostname": names.registry,
        "labels": names.labels(REGISTRY_ROLE),
        "environment": {"REGISTRY_HTTP_ADDR": f":{REGISTRY_PORT}"},
        # An ephemeral loopback port: never taken, never reachable from outside the host.
        "ports": {f"{REGISTRY_PORT}/tcp": ("127.0.0.1", None)},
        "volumes": {names.registry_volume: {"bind": "/var/lib/docker-registry", "mode": "rw"}},
        "network": names.network,
        "restart_policy": {"Name": "unless-stopped"},
        "detach": True,
    }


def ensure_registry(
    host: docker.DockerClient,
    names: LabNames,
    addresses: LabAddresses,
    image: str,
    progress: Progress,
) -> Registry:
    container = _find(host, names)
    if container is None:
        progress(f"registry: creating {names.registry} at {addresses.registry_address}")
        host.volumes.create(names.registry_volume, labels=names.labels(REGISTRY_ROLE))
        endpoint = host.api.create_endpoint_config(ipv4_address=addresses.registry)
        container = host.containers.create(
            **create_kwargs(names, image), networking_config={names.network: endpoint}
        )
    if container.status != "running":
        progress(f"registry: starting {names.registry}")
        container.start()
    container.reload()
    registry = Registry.from_container(container, addresses)
    _wait_answering(registry, names.registry)
    return registry


def find_registry(
    host: docker.DockerClient, names: LabNames, addresses: LabAddresses
) -> Registry | None:
    container = _find(host, names)
    if container is None or container.status != "running":
        return None
    return Registry.from_container(container, addresses)


def _find(host: docker.DockerClient, names: LabNames):
    found = host.containers.list(all=True, filters=names.filters(REGISTRY_ROLE))
    return found[0] if found else None


def _wait_answering(registry: Registry, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    url = f"http://{registry.host_address}/v2/"
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise UserError(
                f"The lab registry does not answer at {url}; see `docker logs {name}`, "
                "then run `lab up` again."
            )
        time.sleep(0.5)


def push_images(
    host: docker.DockerClient, registry: Registry, images: Iterable[str], progress: Progress
) -> dict[str, str]:
    """Push local images of the host's daemon; returns local name -> the name nodes pull.

    The loopback name used for the push is removed again afterwards: it is only
    the way in, and the names the stack uses are the lab-bridge ones.
    """
    return {
        image: push_image(host, image, registry.address, registry.host_address, progress)
        for image in images
    }
