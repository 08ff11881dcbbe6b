"""The cluster across the lab's machines: the same `up`, pointed at the lab's swarm.

What the lab decides is written into a spec of its own (``<state>/lab-cluster.toml``):
the images come from the lab's registry, pretix's media live in the directory
every lab node shares (the host's ``<state>/lab-shared``, a stand-in for NFS,
which this kernel cannot mount). Every other setting is the operator's spec.
Then ``bootstrap.up`` runs unchanged against the lab's leader (DOCKER_HOST), and
a front on this machine's loopback forwards the shop's port to nginx on every
entry node, the way DNS round robin or a load balancer would: losing one
machine does not take the shop's address with it.

`status`, `loadtest` and `chaos` then reach the lab with the two variables
`lab env` prints: DOCKER_HOST (the swarm) and PRETIX_CLUSTER_SPEC (that spec).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from pretix_cluster import bootstrap, managed_registry
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.images import build
from pretix_cluster.lab.control import LabStatus, host_client
from pretix_cluster.lab.names import LabNames
from pretix_cluster.lab.nodes import NODE_SHARED_DIR
from pretix_cluster.render.configs import template
from pretix_cluster.render.stack import PRETIX_UID
from pretix_cluster.spec import ClusterSpec, MediaSection, load_spec, spec_toml

LAB_SPEC_FILE = "lab-cluster.toml"
SHARED_DIR = "lab-shared"
FRONT_ROLE = "front"
FRONT_CONFIG = "lab-front.cfg"
FRONT_HEALTH_PORT = 8405
NGINX_HEALTH_PATH = "/nginx-health"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LabCluster:
    spec_file: Path
    url: str
    docker_host: str


def shared_dir(spec_file: Path) -> Path:
    """The host directory the lab's nodes share, under the cluster's state folder."""
    spec = load_spec(spec_file)
    return spec.state_path(spec_file.resolve().parent) / SHARED_DIR


def lab_spec(spec: ClusterSpec, lab: LabStatus, state_dir: Path) -> ClusterSpec:
    """The operator's spec with what the lab decides: registry (the lab's, unless the spec
    asks for a managed one), shared media, state folder."""
    if lab.registry is None:
        raise UserError(f"The registry of lab {lab.name} is not running; run `lab up` again.")
    registry = spec.images.registry if spec.images.managed else lab.registry.address
    images = spec.images.model_copy(update={"registry": registry})
    media = MediaSection(kind="bind", path=f"{NODE_SHARED_DIR}/media")
    # Absolute: the lab's spec file lives elsewhere than the operator's.
    cluster = spec.cluster.model_copy(update={"state_dir": str(state_dir)})
    return spec.model_copy(update={"images": images, "media": media, "cluster": cluster})


def deploy(lab: LabStatus, spec_file: Path, progress: Progress) -> LabCluster:
    """`up` on the lab's swarm; returns the lab's spec file and the shop's URL."""
    if lab.docker_host is None or not lab.healthy:
        raise UserError(f"Lab {lab.name} is not healthy; run `lab status`, then `lab up` again.")
    spec_dir = spec_file.resolve().parent
    operator_spec = load_spec(spec_file)
    state_dir = operator_spec.state_path(spec_dir)
    spec = lab_spec(operator_spec, lab, state_dir)
    lab_spec_file = state_dir / LAB_SPEC_FILE
    state_dir.mkdir(parents=True, exist_ok=True)
    lab_spec_file.write_text(spec_toml(spec))
    _prepare_media(state_dir / SHARED_DIR)

    # Every Docker call of `up` (SDK and CLI) now goes to the lab's swarm; builds stay here.
    os.environ["DOCKER_HOST"] = lab.docker_host
    push_via = None if spec.images.managed else lab.registry.host_address
    cluster = Cluster(spec, lab_spec_file.parent, push_via=push_via)
    images = build.build_all(cluster.builder, spec.images.base, cluster.ca_bundle(), progress)
    ensure_front(lab, spec, images["haproxy"], state_dir, progress)
    if spec.images.managed:
        trust_managed_registry(lab, cluster, progress)
    result = bootstrap.up(cluster, progress)
    return LabCluster(lab_spec_file, result.url, lab.docker_host)


def trust_managed_registry(lab: LabStatus, cluster: Cluster, progress: Progress) -> None:
    """The operator's step for a managed registry, done by the lab: the line `registry trust`
    prints, run as root in every lab machine and on this one (whose Docker pushes)."""
    command = managed_registry.trust(cluster).command
    host = host_client()
    for node in lab.nodes:
        progress(f"registry: {node.name} trusts the managed registry")
        exit_code, output = host.containers.get(node.name).exec_run(["sh", "-c", command])
        if exit_code != 0:
            raise UserError(
                f"{node.name} could not store the registry's CA ({output.decode().strip()}); "
                "run `lab up` again."
            )
    progress("registry: this machine trusts the managed registry")
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(
            f"This machine could not store the registry's CA ({done.stderr.strip()}); "
            "run `lab up` as root."
        )


def _prepare_media(shared: Path) -> None:
    """pretix (uid PRETIX_UID) writes the media; the nodes see the directory as it is."""
    media = shared / "media"
    media.mkdir(parents=True, exist_ok=True)
    uid = int(PRETIX_UID)
    os.chown(media, uid, uid)


def front_config(lab: LabStatus, spec: ClusterSpec) -> str:
    # With TLS the shop's port speaks only TLS; /nginx-health is on the plain HTTP port.
    check_port = spec.nginx.http_port if spec.tls_enabled else spec.nginx.port
    return template(
        FRONT_CONFIG,
        False,
        port=spec.nginx.port,
        check_port=check_port,
        health_port=FRONT_HEALTH_PORT,
        nginx_health_path=NGINX_HEALTH_PATH,
        nodes=lab.nodes,
    ).content


def ensure_front(
    lab: LabStatus, spec: ClusterSpec, image: str, state_dir: Path, progress: Progress
) -> None:
    """The front container on this machine's daemon: 127.0.0.1:<shop port> -> entry nodes."""
    names = LabNames.checked(lab.name)
    host = host_client()
    config = front_config(lab, spec)
    config_file = state_dir / FRONT_CONFIG
    name = f"{lab.name}-front"
    current = _front(host, names)
    if current is not None and config_file.exists() and config_file.read_text() == config:
        if current.status != "running":
            current.start()
        return
    if current is not None:
        current.remove(force=True)
    config_file.write_text(config)
    config_file.chmod(0o644)
    progress(f"front: 127.0.0.1:{spec.nginx.port} -> nginx on {len(lab.nodes)} lab nodes")
    try:
        host.containers.run(
            image,
            name=name,
            detach=True,
            labels=names.labels(FRONT_ROLE),
            environment={"HAPROXY_CONFIG": "/etc/lab-front/haproxy.cfg"},
            volumes={str(config_file): {"bind": "/etc/lab-front/haproxy.cfg", "mode": "ro"}},
            ports={f"{spec.nginx.port}/tcp": ("127.0.0.1", spec.nginx.port)},
            network=names.network,
            restart_policy={"Name": "unless-stopped"},
        )
    except docker.errors.APIError as exc:
        raise UserError(
            f"The lab's front could not publish 127.0.0.1:{spec.nginx.port} ({exc.explanation}); "
            "free the port or set another [nginx] port."
        ) from None


def remove_front(lab_name: str, progress: Progress) -> None:
    names = LabNames.checked(lab_name)
    current = _front(host_client(), names)
    if current is not None:
        progress(f"{current.name}: removing")
        current.remove(force=True)


def _front(host: docker.DockerClient, names: LabNames):
    found = host.containers.list(all=True, filters=names.filters(FRONT_ROLE))
    return found[0] if found else None
