"""The bench's stacks: the baseline as a cluster of its own, and pausing a stack.

The baseline is a :class:`~pretix_cluster.cluster.Cluster` with the
single-node topology (:data:`~pretix_cluster.render.topology.SINGLE_NODE`),
its own stack name, port and state folder (secrets, API token, ``shop.json``)
under the cluster's. So ``bootstrap.up`` deploys it (or restores a paused
stack's replicas), migrates it and sets up the same demo shop, and
``run_loadtest`` drives it, without knowing the difference.
"""

from __future__ import annotations

import dataclasses
import shutil
import time

from docker.models.services import Service

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.render.stack import ROLE_LABEL
from pretix_cluster.render.topology import SINGLE_NODE, single_node_spec

BASELINE_STATE = "baseline"
PAUSE_TIMEOUT = 180  # longer than the longest stop_grace_period (60 s)
# A node label nothing sets: a global service constrained to it runs nowhere.
PAUSED_CONSTRAINT = "node.labels.pretix-cluster.paused==true"


def baseline_of(cluster: Cluster) -> Cluster:
    """The single-node baseline of a cluster: same spec and images, its own stack."""
    spec = single_node_spec(cluster.spec, cluster.state_dir / BASELINE_STATE)
    return dataclasses.replace(cluster, spec=spec, topology=SINGLE_NODE)


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
            _stop_tasks(service)
        _wait_stopped(cluster, {s.name for s in group}, progress)
    return True


def _stop_tasks(service: Service) -> None:
    """A replicated service to 0 replicas; a global one (nginx) onto no node.

    Swarm cannot scale a global service, so it gets a constraint no node has; the
    next `up` deploys the stack file again, which restores its placement.
    """
    spec = service.attrs["Spec"]
    if "Global" in spec.get("Mode", {}):
        constraints = spec.get("TaskTemplate", {}).get("Placement", {}).get("Constraints") or []
        if PAUSED_CONSTRAINT not in constraints:
            service.update(constraints=[*constraints, PAUSED_CONSTRAINT])
    elif spec.get("Mode", {}).get("Replicated", {}).get("Replicas") != 0:
        service.scale(0)


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
