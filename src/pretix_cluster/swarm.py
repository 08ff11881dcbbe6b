"""The engine: Docker Swarm, driven through the docker SDK and the docker CLI.

Swarm does the orchestration (restarts, scheduling, balancing, secrets); this
module only asks it for things and waits for it, with bounded timeouts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import docker
import docker.errors
import docker.types
from docker.models.containers import Container
from docker.models.services import Service

from pretix_cluster.errors import UserError
from pretix_cluster.render import placement
from pretix_cluster.render.configs import ClusterFile
from pretix_cluster.render.stack import MADE_WITH_LABEL, ROLE_LABEL
from pretix_cluster.spec import swarm_service_name

STACK_LABEL = "com.docker.stack.namespace"
OWNER_LABEL = "pretix-cluster.stack"
UNSETTLED_UPDATES = ("updating", "rollback_started", "paused", "rollback_paused")

Progress = Callable[[str], None]
T = TypeVar("T")


def connect() -> docker.DockerClient:
    """A client for the local daemon, or a sentence saying how to get one."""
    try:
        client = docker.from_env(timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise UserError(
            f"Docker is not reachable ({_short(exc)}); start the daemon "
            "(`make up` does, or run `dockerd &` as root) and try again."
        ) from None


LOCAL_DOCKER = "unix:///var/run/docker.sock"


def is_remote() -> bool:
    """The swarm is reached through DOCKER_HOST, not this machine's own daemon."""
    return os.environ.get("DOCKER_HOST", LOCAL_DOCKER) != LOCAL_DOCKER


def connect_builder() -> docker.DockerClient:
    """This machine's own daemon, which builds the images (also when DOCKER_HOST is remote)."""
    if not is_remote():
        return connect()
    try:
        client = docker.DockerClient(base_url=LOCAL_DOCKER, timeout=120)
        client.ping()
        return client
    except docker.errors.DockerException as exc:
        raise UserError(
            f"This machine's Docker, which builds the images, is not reachable ({_short(exc)}); "
            "start it and try again."
        ) from None


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160]


def ensure_swarm(client: docker.DockerClient, progress: Progress) -> None:
    state = client.info().get("Swarm", {}).get("LocalNodeState")
    if state == "active":
        return
    if state not in ("inactive", None):
        raise UserError(f"This node's swarm state is '{state}'; fix it with `docker swarm` first.")
    progress("swarm: creating a single-node swarm (advertise 127.0.0.1)")
    client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")


# --- stack ownership and inputs ---------------------------------------------


def _stack_filter(stack: str) -> dict[str, str]:
    """Everything `docker stack deploy` makes for a stack carries this label."""
    return {"label": f"{STACK_LABEL}={stack}"}


def stack_services(client: docker.DockerClient, stack: str) -> list[Service]:
    return client.services.list(filters=_stack_filter(stack))


def refuse_foreign_stack(client: docker.DockerClient, stack: str) -> None:
    """A stack of the same name that we did not make must never be overwritten."""
    foreign = [
        s.name
        for s in stack_services(client, stack)
        if ROLE_LABEL not in s.attrs["Spec"].get("Labels", {})
    ]
    if foreign:
        raise UserError(
            f"A stack named '{stack}' already exists and was not made by pretix-cluster "
            f"({foreign[0]}); choose another [cluster] name in cluster.toml."
        )


def refuse_taken_port(
    client: docker.DockerClient, stack: str, port: int, setting: str = "[nginx] port"
) -> None:
    """A port to publish must be free, unless our own stack already publishes it."""
    for service in client.services.list():
        # Host-mode ports are only in the spec; ingress ones in both places.
        ports = service.attrs["Spec"].get("EndpointSpec", {}).get("Ports", []) or []
        if any(p.get("PublishedPort") == port for p in ports):
            if service.attrs["Spec"].get("Labels", {}).get(STACK_LABEL) == stack:
                return
            raise UserError(
                f"Port {port} is already published by the Docker service {service.name}; "
                f"set another {setting} in cluster.toml."
            )
    if is_remote():
        return  # the port is the nodes', not this machine's: Swarm refuses a clash itself
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            raise UserError(
                f"Port {port} is in use by another program on this machine; "
                f"stop it or set another {setting} in cluster.toml."
            ) from None


def refuse_foreign_data(
    client: docker.DockerClient, stack: str, made_with: str, secrets_dir: str
) -> None:
    """Refuse a stack whose existing data volumes were made with other secrets.

    New passwords cannot open old data (PostgreSQL's roles, etcd's users keep
    theirs): a state folder deleted or swapped while the volumes stayed would
    otherwise end in "password authentication failed" minutes into `up`.
    A volume without the label predates it and is let through.
    """
    foreign = sorted(
        name for name, label in stack_volume_labels(client, stack) if label not in (None, made_with)
    )
    if foreign:
        raise UserError(
            f"The volumes {', '.join(foreign)} of {stack} were made with other secrets than "
            f"those in {secrets_dir}; restore the state folder that made them, or delete the "
            "old data with `down --purge`."
        )


def stack_volume_labels(client: docker.DockerClient, stack: str) -> list[tuple[str, str | None]]:
    """Each volume of the stack on every node that answers, with its MADE_WITH_LABEL."""
    found = []
    for node in client.nodes.list():
        with contextlib.suppress(docker.errors.DockerException, OSError, UserError):
            volumes = _on_node(
                client, node.id, lambda d: d.volumes.list(filters=_stack_filter(stack))
            )
            found += [(v.name, (v.attrs.get("Labels") or {}).get(MADE_WITH_LABEL)) for v in volumes]
    return found


def ensure_files(client: docker.DockerClient, stack: str, files: dict[str, ClusterFile]) -> None:
    """Create the versioned secrets and configs the stack refers to (existing ones stay)."""
    labels = {OWNER_LABEL: stack}
    for f in files.values():
        name = f.object_name(stack)
        collection = client.secrets if f.secret else client.configs
        if collection.list(filters={"name": name}):
            continue
        collection.create(name=name, data=f.content.encode(), labels=labels)


def prune_files(client: docker.DockerClient, stack: str, keep: set[str]) -> None:
    """Drop older versions once no service uses them (Swarm refuses while in use)."""
    for collection in (client.secrets, client.configs):
        for obj in collection.list(filters={"label": f"{OWNER_LABEL}={stack}"}):
            if obj.name not in keep:
                with contextlib.suppress(docker.errors.APIError):
                    obj.remove()


# --- placement -------------------------------------------------------------------


def nodes(client: docker.DockerClient) -> list[placement.Node]:
    return [placement.Node.from_inspect(n.attrs) for n in client.nodes.list()]


def apply_placement(
    client: docker.DockerClient, stack: str, plan: placement.Plan, progress: Progress
) -> None:
    """Give each node exactly the stack's labels the plan wants; other labels stay."""
    nodes = client.nodes.list()
    wanted = plan.labels_by_node(stack, [placement.Node.from_inspect(n.attrs) for n in nodes])
    _set_stack_labels(nodes, stack, wanted, progress)


def remove_placement_labels(client: docker.DockerClient, stack: str, progress: Progress) -> None:
    """Drop the stack's labels from every node (after its data is purged)."""
    _set_stack_labels(client.nodes.list(), stack, {}, progress)


def _set_stack_labels(
    nodes: list, stack: str, wanted: dict[str, dict[str, str]], progress: Progress
) -> None:
    """Replace each node's labels of this stack by ``wanted[node id]`` (none when absent)."""
    prefix = placement.member_label(stack, "")
    for node in nodes:
        labels = node.attrs["Spec"].get("Labels") or {}
        new = {k: v for k, v in labels.items() if not k.startswith(prefix)}
        new |= wanted.get(node.id, {})
        if new != labels:
            progress(f"placement: labelling node {node.attrs['Description']['Hostname']}")
            node.update(node.attrs["Spec"] | {"Labels": new})


def demote_node(client: docker.DockerClient, node_id: str) -> None:
    node = client.nodes.get(node_id)
    node.update(node.attrs["Spec"] | {"Role": "worker"})


def remove_node(client: docker.DockerClient, node_id: str) -> None:
    """`docker node rm --force`: the node is gone, its tasks are rescheduled."""
    try:
        client.api.remove_node(node_id, force=True)
    except docker.errors.APIError as exc:
        raise UserError(f"Swarm refused to remove the node ({_short(exc)}).") from None


def remove_services_changing_mode(
    client: docker.DockerClient, stack: str, stack_doc: dict, progress: Progress
) -> None:
    """Swarm cannot turn a replicated service global or back: such a service is removed
    first, and the deploy then creates it anew (a few seconds without it)."""
    for service in stack_services(client, stack):
        short = service.name.removeprefix(f"{stack}_")
        wanted = stack_doc["services"].get(short, {}).get("deploy", {}).get("mode")
        mode = "global" if "Global" in service.attrs["Spec"].get("Mode", {}) else "replicated"
        if wanted and wanted != mode:
            progress(f"{service.name}: changing from {mode} to {wanted}: recreating it")
            service.remove()
            _wait_gone(client, service.name)


def _wait_gone(client: docker.DockerClient, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    label = {"label": f"com.docker.swarm.service.name={name}"}
    while client.services.list(filters={"name": name}) or client.api.containers(filters=label):
        if time.monotonic() > deadline:
            raise UserError(f"{name} was not removed within {int(timeout)} s; run `up` again.")
        time.sleep(1)


# --- deploy and wait -----------------------------------------------------------


def deploy(stack: str, stack_yaml: str, registry_login: str | None = None) -> None:
    """`docker stack deploy` is the CLI's; the SDK has no equivalent.

    ``registry_login`` is a config.json holding a registry's login: the CLI reads it
    from a temporary DOCKER_CONFIG and hands it to Swarm (`--with-registry-auth`), so
    the nodes can pull; it never appears in the stack file, an argument or a variable.
    """
    with _docker_config(registry_login) as environment:
        result = subprocess.run(
            [
                "docker",
                "stack",
                "deploy",
                "--prune",
                "--resolve-image",
                "never",
                *(["--with-registry-auth"] if registry_login else []),
                "--compose-file",
                "-",
                stack,
            ],
            input=stack_yaml,
            capture_output=True,
            text=True,
            check=False,
            env=environment,
        )
    if result.returncode != 0:
        raise UserError(f"docker stack deploy failed: {result.stderr.strip()}.")


@contextlib.contextmanager
def _docker_config(config_json: str | None) -> Iterator[dict[str, str] | None]:
    """The environment with DOCKER_CONFIG in a private folder (0700) that holds
    ``config_json``, deleted afterwards; None (this environment) without one."""
    if config_json is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="pretix-cluster-docker-") as folder:
        os.chmod(folder, 0o700)
        fd = os.open(Path(folder) / "config.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(config_json)
        yield os.environ | {"DOCKER_CONFIG": folder}


@dataclass(frozen=True)
class Task:
    """One Swarm task as the API lists it (``client.api.tasks()``, ``service.tasks()``)."""

    service_id: str
    state: str  # "running" only once its healthcheck passed
    error: str = ""

    @classmethod
    def from_api(cls, entry: dict) -> Task:
        status = entry.get("Status") or {}
        return cls(
            str(entry.get("ServiceID", "")), str(status.get("State", "")), status.get("Err") or ""
        )

    @property
    def running(self) -> bool:
        return self.state == "running"


def running_per_service(tasks: list[Task], services: dict[str, str]) -> dict[str, int]:
    """Running tasks per service name; ``services`` maps service ids to names (others
    stacks' tasks are not counted)."""
    counts = dict.fromkeys(services.values(), 0)
    for task in tasks:
        name = services.get(task.service_id)
        if name is not None and task.running:
            counts[name] += 1
    return counts


@dataclass(frozen=True)
class ServiceState:
    name: str
    role: str
    desired: int
    running: int
    last_error: str
    update_state: str = ""

    @property
    def healthy(self) -> bool:
        # An update in flight still counts old tasks as running: not converged yet.
        return self.running >= self.desired and self.update_state not in UNSETTLED_UPDATES


def wanted_tasks(mode: dict, tasks_made: int) -> int:
    """How many tasks a service wants: its replicas, or for a global service (nginx) one
    per eligible node, i.e. the tasks Swarm made, and at least one: right after a deploy
    (or the bench's unpause) Swarm may not have made them yet, and 0 of 0 would count
    as converged while no nginx listens."""
    if "Replicated" in mode:
        return mode["Replicated"].get("Replicas", 1)
    return max(1, tasks_made)


def service_states(client: docker.DockerClient, stack: str) -> list[ServiceState]:
    states = []
    for service in stack_services(client, stack):
        spec = service.attrs["Spec"]
        tasks = [Task.from_api(t) for t in service.tasks(filters={"desired-state": "running"})]
        desired = wanted_tasks(spec.get("Mode", {}), len(tasks))
        running = sum(1 for t in tasks if t.running)
        # Only errors of tasks that should run now: old failures are history, not state.
        errors = [t.error for t in tasks if t.error]
        states.append(
            ServiceState(
                service.name,
                spec.get("Labels", {}).get(ROLE_LABEL, "?"),
                desired,
                running,
                errors[-1] if errors else "",
                (service.attrs.get("UpdateStatus") or {}).get("State", ""),
            )
        )
    return sorted(states, key=lambda s: s.name)


def running_tasks(client: docker.DockerClient, stack: str) -> dict[str, int]:
    """Running tasks per service (short name): two API calls for the whole stack."""
    names = _short_names(client, stack)
    listed = client.api.tasks(filters={"desired-state": "running"})
    return running_per_service([Task.from_api(t) for t in listed], names)


def running_task_ids(client: docker.DockerClient, stack: str) -> dict[str, set[str]]:
    """The ids of the running tasks per service (short name): a task Swarm replaced
    (health check failed, container gone) gets a new id."""
    names = _short_names(client, stack)
    ids: dict[str, set[str]] = {name: set() for name in names.values()}
    for entry in client.api.tasks(filters={"desired-state": "running"}):
        name = names.get(entry.get("ServiceID", ""))
        if name is not None and Task.from_api(entry).running:
            ids[name].add(entry["ID"])
    return ids


def _short_names(client: docker.DockerClient, stack: str) -> dict[str, str]:
    prefix = stack + "_"
    return {s.id: s.name.removeprefix(prefix) for s in stack_services(client, stack)}


def wait_converged(
    client: docker.DockerClient,
    stack: str,
    timeout: float,
    progress: Progress,
    names: set[str] | None = None,
) -> None:
    """Wait until every (or every named) service runs all its replicas, healthy."""
    deadline = time.monotonic() + timeout
    while True:
        states = [s for s in service_states(client, stack) if names is None or s.name in names]
        pending = [s for s in states if not s.healthy]
        ready = len(states) - len(pending)
        progress(
            f"services healthy: {ready}/{len(states)}"
            + (f" (waiting for {', '.join(s.name for s in pending[:4])})" if pending else "")
        )
        if states and not pending:
            return
        if time.monotonic() > deadline:
            detail = "; ".join(
                f"{s.name} {s.running}/{s.desired} {s.last_error}".strip() for s in pending
            )
            raise UserError(
                f"Services did not become healthy within {int(timeout)} s ({detail}); "
                "see `docker service ps --no-trunc <name>`, fix the cause and run `up` again."
            )
        time.sleep(3)


# --- reaching into containers, on whichever node they run --------------------------
#
# A Docker daemon knows only its own containers. On a multi-node swarm the tool
# asks the manager it talks to (DOCKER_HOST) where a task runs, and reaches that
# node's daemon the same way it reaches the manager: tcp://<node address>:<port>
# for a tcp:// DOCKER_HOST (the lab), ssh://<user>@<node hostname> for ssh://.

_NODE_CLIENTS: dict[str, docker.DockerClient] = {}
_ENDPOINT_OF: dict[int, str] = {}  # id(node client) -> its endpoint, for the docker CLI
# A machine that just died does not refuse connections, it swallows them (its address is
# gone): every call would wait for a connect timeout, and the chaos sampler's probes then
# stalled for ~50 s. An endpoint that failed is skipped for a few seconds instead.
NODE_API_TIMEOUT_S = 10
UNREACHABLE_FOR_S = 10.0
_UNREACHABLE_SINCE: dict[str, float] = {}


def node_endpoint(manager_endpoint: str, node: placement.Node) -> str | None:
    """How to reach ``node``'s daemon, by analogy with the manager's endpoint; None: no way."""
    parts = urlsplit(manager_endpoint)
    if parts.scheme == "tcp":
        return f"tcp://{node.address}:{parts.port or 2375}"
    if parts.scheme == "ssh":
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"ssh://{user}{node.hostname}{port}"
    return None


def node_client(client: docker.DockerClient, node_id: str) -> docker.DockerClient:
    """The daemon of the node with this id (the manager's own client for its own node)."""
    if node_id == _own_node_id(client):
        return client
    node = placement.Node.from_inspect(client.nodes.get(node_id).attrs)
    endpoint = node_endpoint(os.environ.get("DOCKER_HOST", ""), node)
    if endpoint is None:
        raise UserError(
            f"A task runs on node {node.hostname}, whose Docker this machine cannot reach; "
            "set DOCKER_HOST to tcp://... or ssh://... so that every node is reached the same way."
        )
    failed_at = _UNREACHABLE_SINCE.get(endpoint)
    if failed_at is not None and time.monotonic() - failed_at < UNREACHABLE_FOR_S:
        raise NodeUnreachable(f"{node.hostname} ({endpoint}) did not answer just now")
    if endpoint not in _NODE_CLIENTS:
        node_docker = docker.DockerClient(base_url=endpoint, timeout=NODE_API_TIMEOUT_S)
        _NODE_CLIENTS[endpoint] = node_docker
        _ENDPOINT_OF[id(node_docker)] = endpoint
    return _NODE_CLIENTS[endpoint]


class NodeUnreachable(docker.errors.DockerException):
    """A node's daemon did not answer a moment ago: skipped for UNREACHABLE_FOR_S."""


def _on_node(
    client: docker.DockerClient, node_id: str, call: Callable[[docker.DockerClient], T]
) -> T:
    """``call`` against the node's daemon; a connection failure marks it unreachable."""
    node_docker = node_client(client, node_id)
    try:
        return call(node_docker)
    except (docker.errors.DockerException, OSError) as exc:
        if not isinstance(exc, docker.errors.NotFound | NodeUnreachable):
            endpoint = _ENDPOINT_OF.get(id(node_docker))
            if endpoint is not None:
                _UNREACHABLE_SINCE[endpoint] = time.monotonic()
        raise


def _own_node_id(client: docker.DockerClient) -> str:
    cached = getattr(client, "_pretix_cluster_node_id", None)
    if cached is None:
        cached = client.info().get("Swarm", {}).get("NodeID", "")
        client._pretix_cluster_node_id = cached  # type: ignore[attr-defined]
    return cached


def running_containers(client: docker.DockerClient, stack: str, short: str) -> list[Container]:
    """The service's running containers, on every node (each bound to its node's daemon)."""
    service = swarm_service_name(stack, short)
    try:
        tasks = client.api.tasks(filters={"service": service, "desired-state": "running"})
    except docker.errors.NotFound:  # no such service (not deployed, or paused by the bench)
        return []
    containers = []
    for task in tasks:
        container_id = task.get("Status", {}).get("ContainerStatus", {}).get("ContainerID")
        if not container_id or task.get("ServiceID") is None:
            continue
        # A container can exit, or its node vanish, between the listing and the inspection.
        with contextlib.suppress(docker.errors.DockerException, OSError, UserError):
            container = _on_node(
                client, task["NodeID"], lambda d, cid=container_id: d.containers.get(cid)
            )
            if container.status == "running":
                containers.append(container)
    return containers


def task_node(client: docker.DockerClient, stack: str, short: str) -> str | None:
    """The hostname of the node running the service's (first) running task."""
    try:
        tasks = client.api.tasks(
            filters={"service": swarm_service_name(stack, short), "desired-state": "running"}
        )
    except docker.errors.NotFound:
        return None
    for task in tasks:
        if task.get("Status", {}).get("State") == "running" and task.get("NodeID"):
            return client.nodes.get(task["NodeID"]).attrs["Description"]["Hostname"]
    return None


def stack_containers(client: docker.DockerClient, stack: str) -> list[Container]:
    """Every running container of the stack on every node that answers."""
    found = []
    for node in client.nodes.list():
        with contextlib.suppress(docker.errors.DockerException, OSError, UserError):
            found += _on_node(
                client,
                node.id,
                lambda d: d.containers.list(sparse=True, filters=_stack_filter(stack)),
            )
    return found


def exec_in(
    container: Container,
    command: list[str],
    stdin: str | None = None,
    timeout: float = 120,
    user: str | None = None,
) -> tuple[int, str]:
    """Run a command in a container; input goes on stdin, never on the command line."""
    as_user = ["-u", user] if user else []
    endpoint = _ENDPOINT_OF.get(id(container.client))
    host = ["-H", endpoint] if endpoint else []
    result = subprocess.run(
        ["docker", *host, "exec", "-i", *as_user, container.id, *command],
        input=stdin or "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def exec_in_service(
    client: docker.DockerClient,
    stack: str,
    short: str,
    command: list[str],
    stdin: str | None = None,
    timeout: float = 120,
) -> tuple[int, str]:
    containers = running_containers(client, stack, short)
    if not containers:
        raise UserError(
            f"No running container of {swarm_service_name(stack, short)}; run `up` to start it."
        )
    return exec_in(containers[0], command, stdin, timeout)


def run_job(
    client: docker.DockerClient,
    stack: str,
    name: str,
    template: str,
    command: list[str],
    timeout: float,
    progress: Progress,
) -> str:
    """Run a one-off task (e.g. migrations) as a Swarm job shaped like service `template`.

    It takes image, networks, secrets and mounts from the running service, so a
    job never needs its own copy of any of them; returns the job's log.
    """
    source = client.services.get(swarm_service_name(stack, template)).attrs["Spec"]
    task = source["TaskTemplate"]
    job_name = swarm_service_name(stack, name)
    _remove_job(client, job_name)  # a leftover of an interrupted run
    task_template = {
        # No healthcheck: the service's own one would kill a long migration.
        "ContainerSpec": task["ContainerSpec"]
        | {"Args": command, "Healthcheck": {"Test": ["NONE"]}},
        "Networks": task.get("Networks", []),
        "RestartPolicy": {"Condition": "none"},
    }
    client.api.create_service(
        task_template,
        name=job_name,
        labels={OWNER_LABEL: stack},
        mode=docker.types.ServiceMode("replicated-job", concurrency=1, replicas=1),
    )
    try:
        return _wait_job(client, job_name, timeout, progress)
    finally:
        _remove_job(client, job_name)


def _remove_job(client: docker.DockerClient, job_name: str) -> None:
    """Swarm leaves a job's exited containers behind, holding its networks: remove both."""
    with contextlib.suppress(docker.errors.APIError):
        client.services.get(job_name).remove()
    _remove_exited(client, {"label": f"com.docker.swarm.service.name={job_name}"})


def _remove_exited(client: docker.DockerClient, filters: dict) -> None:
    for entry in client.api.containers(all=True, filters=filters | {"status": "exited"}):
        with contextlib.suppress(docker.errors.APIError):
            client.api.remove_container(entry["Id"], v=False)


def _wait_job(
    client: docker.DockerClient, job_name: str, timeout: float, progress: Progress
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service = client.services.get(job_name)
        states = [t["Status"]["State"] for t in service.tasks()]
        progress(f"{job_name}: {', '.join(states) or 'scheduling'}")
        if "complete" in states:
            return _service_logs(service)
        if any(s in ("failed", "rejected") for s in states):
            log = _service_logs(service)
            tail = " / ".join(log.strip().splitlines()[-3:])
            raise UserError(f"{job_name} failed ({tail}); fix the cause and run `up` again.")
        time.sleep(3)
    raise UserError(f"{job_name} did not finish within {int(timeout)} s; run `up` again.")


def _service_logs(service: Service) -> str:
    with contextlib.suppress(docker.errors.APIError):
        return b"".join(service.logs(stdout=True, stderr=True)).decode(errors="replace")
    return ""


# --- teardown ------------------------------------------------------------------------


def remove_stack(
    client: docker.DockerClient, stack: str, progress: Progress, timeout: float = 180
) -> None:
    # One-off jobs (migrate) are not part of the stack file but belong to the stack.
    for job in client.services.list(filters={"label": f"{OWNER_LABEL}={stack}"}):
        _remove_job(client, job.name)
    _remove_exited(client, _stack_filter(stack))
    # Always: it also removes networks left by an interrupted earlier `down`.
    subprocess.run(["docker", "stack", "rm", stack], capture_output=True, check=False)
    deadline = time.monotonic() + timeout
    while leftovers := _leftover_stack_objects(client, stack):
        if time.monotonic() > deadline:
            raise UserError(
                f"{stack} still has {len(leftovers)} services, networks or containers after "
                f"{int(timeout)} s; wait a moment and run `down` again."
            )
        progress(f"{stack}: waiting for services, networks and containers to go")
        time.sleep(2)


def _leftover_stack_objects(client: docker.DockerClient, stack: str) -> list[str]:
    label = _stack_filter(stack)
    names = [s.name for s in stack_services(client, stack)]
    names += [n.name for n in client.networks.list(filters=label)]
    # The low-level call: the high-level one inspects each container, racing their removal.
    names += [c["Id"] for c in client.api.containers(all=True, filters=label)]
    return names


def purge_data(client: docker.DockerClient, stack: str, progress: Progress) -> None:
    """Volumes, secrets and configs of the stack: only after `remove_stack`."""
    for volume in client.volumes.list(filters=_stack_filter(stack)):
        progress(f"removing volume {volume.name}")
        _remove_with_retry(volume.remove)
    prune_files(client, stack, keep=set())


def _remove_with_retry(remove: Callable[[], None], attempts: int = 30) -> None:
    # A container that just exited may hold a volume for a moment longer.
    for attempt in range(attempts):
        try:
            remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if attempt == attempts - 1:
                raise UserError(
                    f"Could not remove a volume ({_short(exc)}); stop what uses it and run "
                    "`down --purge` again."
                ) from None
            time.sleep(2)
