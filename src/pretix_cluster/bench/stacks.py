"""The baseline stack as the tool's other commands see a cluster, and pausing a stack.

:class:`BaselineCluster` is a :class:`~pretix_cluster.cluster.Cluster` whose
files and stack come from :mod:`pretix_cluster.render.baseline`, with its own
state folder (secrets, API token, ``shop.json``) under the cluster's. So
``bootstrap.up`` deploys it (or restores a paused stack's replicas), migrates
it and sets up the same demo shop, and ``run_loadtest`` drives it, without
knowing the difference.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import ClassVar

from docker.models.services import Service

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.images import build
from pretix_cluster.render.baseline import (
    baseline_spec,
    data_tier,
    postgres_parameters,
    render_baseline_files,
    render_baseline_stack,
)
from pretix_cluster.render.configs import ClusterFile
from pretix_cluster.render.stack import ROLE_LABEL, dump_stack

BASELINE_STATE = "baseline"
PAUSE_TIMEOUT = 180  # longer than the longest stop_grace_period (60 s)


@dataclass
class BaselineCluster(Cluster):
    """The single-node baseline of a cluster: same spec and images, its own stack."""

    uses_patroni: ClassVar[bool] = False

    @classmethod
    def of(cls, cluster: Cluster) -> BaselineCluster:
        spec = baseline_spec(cluster.spec, cluster.state_dir / BASELINE_STATE)
        return cls(spec, cluster.spec_dir, cluster.ca_file)

    def files(self) -> dict[str, ClusterFile]:
        return render_baseline_files(self.spec, self.secrets.ensure_all())

    def stack_yaml(self, images: build.ImageSet, files: dict[str, ClusterFile]) -> str:
        parameters = postgres_parameters(self.spec, self.secrets.ensure_all())
        return dump_stack(render_baseline_stack(self.spec, images, files, parameters))

    def data_tier(self) -> set[str]:
        return data_tier(self.spec)


def is_deployed(cluster: Cluster) -> bool:
    return bool(swarm.stack_services(cluster.client, cluster.stack))


def is_running(cluster: Cluster) -> bool:
    """Every service of the stack runs all its replicas (a paused stack has none)."""
    states = swarm.service_states(cluster.client, cluster.stack)
    return bool(states) and all(s.healthy and s.desired > 0 for s in states)


def pause(cluster: Cluster, progress: swarm.Progress) -> bool:
    """Scale every service of the stack to 0 and wait until its containers are gone.

    In order: pretix and nginx first (nothing talks to a vanishing database),
    then the data tier, etcd last (Patroni can still drop its leader key).
    Volumes, secrets and networks stay, so `bootstrap.up` brings the stack
    back with its data. A stack that does not exist is left alone (False).
    """
    services = swarm.stack_services(cluster.client, cluster.stack)
    if not services:
        return False
    data = cluster.data_tier()

    def rank(service: Service) -> int:
        if service.name not in data:
            return 0
        return 2 if service.attrs["Spec"].get("Labels", {}).get(ROLE_LABEL) == "etcd" else 1

    for step in (0, 1, 2):
        group = [s for s in services if rank(s) == step]
        for service in group:
            if service.attrs["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas") != 0:
                service.scale(0)
        _wait_stopped(cluster, {s.name for s in group}, progress)
    return True


def _wait_stopped(cluster: Cluster, names: set[str], progress: swarm.Progress) -> None:
    deadline = time.monotonic() + PAUSE_TIMEOUT
    while True:
        running = [
            c
            for c in cluster.client.api.containers(
                filters={"status": "running", "label": f"{swarm.STACK_LABEL}={cluster.stack}"}
            )
            if c["Labels"].get("com.docker.swarm.service.name") in names
        ]
        if not running:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"{cluster.stack} still runs {len(running)} containers {PAUSE_TIMEOUT} s after "
                "being scaled to 0; see `docker service ps`, then run `bench` again."
            )
        progress(f"pausing {cluster.stack}: {len(running)} containers still running")
        time.sleep(3)


def purge(cluster: Cluster, progress: swarm.Progress) -> None:
    """Remove the stack, its volumes, secrets and configs (as `down --purge`)."""
    swarm.remove_stack(cluster.client, cluster.stack, progress)
    swarm.purge_data(cluster.client, cluster.stack, progress)
    # The passwords, the API token and shop.json belong to the data that is gone.
    shutil.rmtree(cluster.state_dir, ignore_errors=True)
