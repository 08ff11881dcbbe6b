"""The managed registry: Debian's docker-registry run by the tool for a swarm that has none.

`up` with `[images] registry = "managed"`: the node the tool talks to (or the
one that already holds the registry's data) gets the registry's node label;
the docker-registry image is built here and, when this machine's daemon is not
that node's, copied there through the Docker API (no registry is needed to
start the registry); the stack ``<stack>-registry`` runs it with TLS from the
tool's local CA and a generated password. The cluster's images are pushed with
that password (the SDK's auth_config), every node that answers must then pull
one of them, and the cluster's stack is deployed with the login handed over by
a temporary DOCKER_CONFIG. Rendering: render/registry.py.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import httpx

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.images import build
from pretix_cluster.images.build import ImageSet
from pretix_cluster.images.registry import as_pulled, push_image, qualified, split_tag
from pretix_cluster.render import placement
from pretix_cluster.render import registry as render
from pretix_cluster.render.registry import RegistryAddress
from pretix_cluster.render.stack import dump_stack
from pretix_cluster.tls import KeyPair, LocalCA

READY_TIMEOUT = 120
TLS_DIR = "tls"
REGISTRY_NAME = "registry"  # its kept certificate in the CA's folder: registry.pem, .key
KEY_FILE = f"{REGISTRY_NAME}.key"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ManagedRegistry:
    """The running registry as `up` uses it: where it is, whom it trusts, its login."""

    address: RegistryAddress
    node: placement.Node
    ca: LocalCA
    password: str
    image: str  # the docker-registry image on this machine: also the pull check's probe

    @property
    def auth_config(self) -> dict[str, str]:
        return render.auth_config(self.password)

    @property
    def trust_command(self) -> str:
        return render.trust_command(self.address, self.ca.pair.cert_pem)

    @property
    def docker_cli_config(self) -> str:
        return render.docker_cli_config(self.address, self.password)


@dataclass(frozen=True)
class Trust:
    """What `registry trust` prints: the one line every node runs, and the nodes."""

    registry: str
    ca_file: str
    command: str
    nodes: list[dict]


def refuse_single_node(nodes: list[placement.Node]) -> None:
    if len(nodes) < 2:
        raise UserError(
            "A single-node swarm runs the images built on it and needs no registry; remove "
            '[images] registry = "managed" from cluster.toml (or add nodes to the swarm).'
        )


def local_ca(cluster: Cluster) -> LocalCA:
    return LocalCA.ensure(cluster.state_dir / TLS_DIR)


def ensure(cluster: Cluster, progress: Progress) -> ManagedRegistry:
    """The registry stack running and answering over TLS; before anything is pushed."""
    spec, client = cluster.spec, cluster.client
    stack = render.stack_name(spec)
    swarm.refuse_foreign_stack(client, stack)
    node = cluster.managed_registry_node()
    address = RegistryAddress(node.address, spec.images.registry_port)
    _label(client, node, render.node_label(spec), progress)
    image = build.docker_registry_image(
        cluster.builder, spec.images.base, cluster.ca_bundle(), progress
    )
    _copy_image_to(cluster, node, image, progress)
    ca = local_ca(cluster)
    pair = server_pair(ca, [node.address, node.hostname])
    password = cluster.secrets.ensure_all()["registry_password"]
    files = render.registry_files(pair.cert_pem, pair.key_pem, password)
    swarm.ensure_files(client, stack, files)
    progress(f"registry: deploying stack {stack} on {node.hostname} ({address})")
    swarm.deploy(stack, dump_stack(render.registry_stack(spec, image, files)))
    wait_answering(address, ca.cert_path, stack)
    swarm.prune_files(client, stack, {f.object_name(stack) for f in files.values()})
    return ManagedRegistry(address, node, ca, password, image)


def _label(client: docker.DockerClient, node: placement.Node, label: str, progress: Progress):
    if node.labels.get(label) == "true":
        return
    progress(f"registry: labelling node {node.hostname}")
    swarm_node = client.nodes.get(node.id)
    spec = swarm_node.attrs["Spec"]
    swarm_node.update(spec | {"Labels": (spec.get("Labels") or {}) | {label: "true"}})


def _copy_image_to(cluster: Cluster, node: placement.Node, image: str, progress: Progress) -> None:
    """The registry cannot come from a registry: `docker save` here, `docker load` there."""
    if cluster.builder.info().get("Swarm", {}).get("NodeID") == node.id:
        return  # this machine is the registry's node: the image was built there
    target = swarm.node_client(cluster.client, node.id)
    with contextlib.suppress(docker.errors.ImageNotFound):
        target.images.get(image)
        return
    progress(f"registry: copying {image} to {node.hostname}")
    try:
        # Saved under this very tag: after a push the image also carries registry-qualified
        # tags, and the first of those would be the only name it had there.
        target.images.load(cluster.builder.images.get(image).save(named=image))
    except (docker.errors.DockerException, OSError) as exc:
        raise UserError(
            f"Copying {image} to {node.hostname} failed ({str(exc).splitlines()[0][:160]}); "
            "check that node's Docker, then run `up` again."
        ) from None


def server_pair(ca: LocalCA, hosts: list[str]) -> KeyPair:
    """The registry's certificate for ``hosts``, kept in the CA's folder (a new one would
    redeploy the registry)."""
    return ca.kept_pair(REGISTRY_NAME, hosts)


def wait_answering(
    address: RegistryAddress, ca_file: Path, stack: str, timeout: float = READY_TIMEOUT
) -> None:
    """The registry's API over TLS, verified with the tool's CA: 401 (it wants the login)."""
    url = f"https://{address}/v2/"
    context = ssl.create_default_context(cafile=str(ca_file))
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            status = httpx.get(url, verify=context, timeout=5).status_code
            if status == 401:
                return
            last = f"HTTP {status}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            raise UserError(
                f"The managed registry does not answer at {url} within {int(timeout)} s ({last}); "
                f"see `docker service ps {stack}_{render.SERVICE}`, fix the cause and run `up` "
                "again."
            )
        time.sleep(2)


def push(
    cluster: Cluster, registry: ManagedRegistry, images: ImageSet, progress: Progress
) -> ImageSet:
    """Push the registry's own image (the pull check's probe), then every cluster image."""
    address = str(registry.address)
    for image in (registry.image, *images.tags.values()):
        try:
            push_image(cluster.builder, image, address, address, progress, registry.auth_config)
        except UserError as exc:
            if not _untrusted(str(exc)):
                raise
            raise UserError(
                f"This machine's Docker does not trust the managed registry {address}; run "
                f"this as root here (and on every node), then `up` again: "
                f"{registry.trust_command}"
            ) from None
    return as_pulled(images, address)


def check_nodes_pull(
    client: docker.DockerClient, registry: ManagedRegistry, progress: Progress
) -> None:
    """Every node whose Docker answers pulls the probe image; the stack deploys only then."""
    repository, tag = split_tag(qualified(registry.image, str(registry.address)))
    untrusted = []
    for node in swarm.nodes(client):
        if not node.ready:
            continue
        try:
            node_docker = swarm.node_client(client, node.id)
            node_docker.images.pull(repository, tag=tag, auth_config=registry.auth_config)
        except docker.errors.APIError as exc:
            if not _untrusted(str(exc)):
                raise UserError(
                    f"Node {node.hostname} cannot pull from the managed registry "
                    f"{registry.address} ({exc.explanation}); make the registry's port "
                    "reachable from it, then run `up` again."
                ) from None
            untrusted.append(node.hostname)
        except (UserError, docker.errors.DockerException, OSError):
            progress(f"registry: cannot reach {node.hostname}'s Docker to check its pull")
            continue
        else:
            progress(f"registry: {node.hostname} pulls from {registry.address}")
    if untrusted:
        raise UserError(
            f"{', '.join(untrusted)} cannot pull from the managed registry {registry.address} "
            f"(its certificate is not trusted there); run this as root on each of them, then "
            f"`up` again (`registry trust` prints it): {registry.trust_command}"
        )


def login(cluster: Cluster) -> None:
    """The manager's client keeps the registry's login in memory (the SDK's `login`): the
    services it creates itself (one-off jobs) then carry it, as the stack's do."""
    address = cluster.managed_registry_address()
    password = cluster.secrets.ensure_all()["registry_password"]
    try:
        cluster.client.login(render.USER, password, registry=str(address))
    except docker.errors.APIError as exc:
        raise UserError(
            f"The managed registry {address} refused the login ({exc.explanation}); run `up` again."
        ) from None


def _untrusted(message: str) -> bool:
    """The daemon's words for a certificate it cannot verify."""
    return "x509" in message or "certificate" in message


def trust(cluster: Cluster) -> Trust:
    """The trust line for the registry's node and port, whether or not it runs yet."""
    if not cluster.spec.images.managed:
        raise UserError(
            'There is no managed registry: [images] registry is not "managed" in cluster.toml.'
        )
    address = cluster.managed_registry_address()
    ca = local_ca(cluster)
    return Trust(
        registry=str(address),
        ca_file=str(ca.cert_path),
        command=render.trust_command(address, ca.pair.cert_pem),
        nodes=[
            {"hostname": n.hostname, "address": n.address, "ready": n.ready}
            for n in swarm.nodes(cluster.client)
        ],
    )


def remove(cluster: Cluster, purge: bool, progress: Progress) -> None:
    """`down`: the registry's stack goes; with purge its data, files and node label too."""
    client = cluster.client
    stack = render.stack_name(cluster.spec)
    swarm.remove_stack(client, stack, progress)
    if not purge:
        return
    label = render.node_label(cluster.spec)
    for node in swarm.nodes(client):
        if node.labels.get(label) != "true":
            continue
        with contextlib.suppress(UserError, docker.errors.DockerException, OSError):
            for volume in swarm.node_client(client, node.id).volumes.list(
                filters={"label": f"{swarm.STACK_LABEL}={stack}"}
            ):
                progress(f"removing volume {volume.name} on {node.hostname}")
                volume.remove(force=True)
        swarm_node = client.nodes.get(node.id)
        spec = swarm_node.attrs["Spec"]
        labels = {k: v for k, v in (spec.get("Labels") or {}).items() if k != label}
        swarm_node.update(spec | {"Labels": labels})
    swarm.prune_files(client, stack, keep=set())
