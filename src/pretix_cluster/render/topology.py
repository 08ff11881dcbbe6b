"""Deployment shapes: which services a deployment has, composed from the stack's blocks.

A :class:`Topology` turns a spec into the files its services mount and the
stack file that runs them, and names the services that must be healthy before
migrations run. `up` deploys whichever topology a :class:`~pretix_cluster.cluster.Cluster`
carries, `bench` uses both, and placement over several machines belongs here too.

- :data:`HA`: the highly available cluster: Patroni + etcd, Redis + Sentinel,
  HAProxy in front of both, pretix's web/worker/cron roles, nginx.
- :data:`SINGLE_NODE`: what pretix's own small-scale Docker install gives, the
  bench's baseline: one pretix container running gunicorn and a celery worker
  (image role ``standalone``), one PostgreSQL 15 without Patroni
  (``pg-standalone``), one Redis without Sentinel, nginx in front. Same images,
  same per-process settings as one web plus one worker replica of the cluster,
  same PostgreSQL parameters and the same nginx and pretix.cfg templates, so a
  comparison measures what the cluster adds and nothing else. Its services are
  named like the cluster's components (``web``, ``pg``, ``redis``, ``nginx``),
  so migrations, the demo shop and the load test's CPU accounting work on it
  unchanged; ``web`` is gunicorn and celery together here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pretix_cluster.daemons import pretix as pretix_daemon
from pretix_cluster.images.build import ImageSet
from pretix_cluster.render import placement
from pretix_cluster.render import stack as blocks
from pretix_cluster.render.configs import (
    ClusterFile,
    nginx_files,
    redis_file,
    render_files,
    template,
)
from pretix_cluster.render.placement import entry_label, label_constraint, member_label
from pretix_cluster.spec import PORTS, ClusterSpec, TlsSection, WaitingRoomSection, mebibytes
from pretix_cluster.tls import KeyPair

SINGLE_NODE_SUFFIX = "-base"


@dataclass(frozen=True)
class Topology:
    """One deployment shape; the subclasses say what it is made of."""

    name: str
    # Patroni's dynamic settings are converged by `up` only where Patroni runs.
    uses_patroni: bool

    def files(
        self, spec: ClusterSpec, values: dict[str, str], edge: KeyPair | None = None
    ) -> dict[str, ClusterFile]:
        """The files the services mount; `edge`: nginx's certificate and key (with TLS)."""
        raise NotImplementedError

    def stack(
        self,
        spec: ClusterSpec,
        images: ImageSet,
        files: dict[str, ClusterFile],
        made_with: str | None = None,
    ) -> dict:
        """The stack file; ``made_with``: the data volumes' label (stack.MADE_WITH_LABEL)."""
        raise NotImplementedError

    def data_tier(self, spec: ClusterSpec) -> list[str]:
        """Short names of the services that must be healthy before migrations run."""
        raise NotImplementedError

    def placement(self, spec: ClusterSpec, nodes: list[placement.Node]) -> placement.Plan | None:
        """Which node holds each stateful member; None: the shape pins nothing."""
        return None


@dataclass(frozen=True)
class HighAvailability(Topology):
    def files(
        self, spec: ClusterSpec, values: dict[str, str], edge: KeyPair | None = None
    ) -> dict[str, ClusterFile]:
        return render_files(spec, values, edge)

    def stack(
        self,
        spec: ClusterSpec,
        images: ImageSet,
        files: dict[str, ClusterFile],
        made_with: str | None = None,
    ) -> dict:
        services: dict[str, blocks.Service] = {}
        services.update(blocks.etcd_services(spec, images))
        services.update(blocks.postgres_services(spec, images))
        services.update(blocks.redis_services(spec, images))
        services["haproxy"] = blocks.haproxy_service(spec, images)
        services["web"] = blocks.web_service(spec, images)
        services["worker"] = blocks.worker_service(spec, images)
        services["cron"] = blocks.cron_service(spec, images)
        services["nginx"] = blocks.nginx_service(spec, images)
        _place(spec, services)
        volumes = [blocks.data_volume(n) for n in spec.stateful_nodes]
        return blocks.stack_document(spec, services, volumes, files, made_with)

    def data_tier(self, spec: ClusterSpec) -> list[str]:
        return [*spec.stateful_nodes, "haproxy"]

    def placement(self, spec: ClusterSpec, nodes: list[placement.Node]) -> placement.Plan:
        return placement.plan(spec, nodes)


def _place(spec: ClusterSpec, services: dict[str, blocks.Service]) -> None:
    """Members on their labelled node, nginx on the entry nodes, replicas spread."""
    for member in spec.stateful_nodes:
        blocks.pin(services[member], label_constraint(member_label(spec.stack, member)))
    blocks.pin(services["nginx"], label_constraint(entry_label(spec.stack)))
    for name in ("web", "worker", "haproxy"):
        blocks.spread(services[name])


# The single node's services, named like the cluster's components.
PG_SERVICE = "pg"
REDIS_SERVICE = "redis"
APP_ROLE = "standalone"  # the pretix image's role running gunicorn and celery together


@dataclass(frozen=True)
class SingleNode(Topology):
    def files(
        self, spec: ClusterSpec, values: dict[str, str], edge: KeyPair | None = None
    ) -> dict[str, ClusterFile]:
        """pretix.cfg pointing straight at PostgreSQL and Redis, nginx's files as the cluster's."""
        pretix = pretix_daemon.config_context(spec, values)
        pretix |= {
            "db": pretix["db"] | {"host": PG_SERVICE, "port": PORTS.postgres},
            "replica": None,
            "metrics": None,  # off by default in pretix
            "redis": {
                "host": REDIS_SERVICE,
                "port": PORTS.redis,
                "password": values["redis_password"],
            },
        }
        files = [
            template("pretix.cfg", True, **pretix),
            *nginx_files(spec, values, edge),
            ClusterFile("pg_pretix_password", values["pg_pretix_password"], True),
            ClusterFile("redis_password", values["redis_password"], True),
            # A lone master: no replica could ever acknowledge a write.
            redis_file(values, REDIS_SERVICE, min_replicas_to_write=0),
        ]
        return {f.name: f for f in files}

    def stack(
        self,
        spec: ClusterSpec,
        images: ImageSet,
        files: dict[str, ClusterFile],
        made_with: str | None = None,
    ) -> dict:
        services: dict[str, blocks.Service] = {
            PG_SERVICE: plain_postgres_service(spec, images),
            REDIS_SERVICE: lone_redis_service(spec, images),
            "web": standalone_pretix_service(spec, images),
            "nginx": blocks.nginx_service(spec, images),
        }
        volumes = [blocks.data_volume(PG_SERVICE), blocks.data_volume(REDIS_SERVICE)]
        return blocks.stack_document(spec, services, volumes, files, made_with)

    def data_tier(self, spec: ClusterSpec) -> list[str]:
        return [PG_SERVICE, REDIS_SERVICE]


HA = HighAvailability("ha", uses_patroni=True)
SINGLE_NODE = SingleNode("single-node", uses_patroni=False)


def single_node_spec(spec: ClusterSpec, state_dir: Path) -> ClusterSpec:
    """The cluster's spec with the single node's stack name, ports, URL and state folder.

    Not re-validated on purpose: the stack name ``<name>-base`` is a valid
    Docker name but longer than (and shaped unlike) what ``[cluster] name``
    accepts. The URL is loopback: the single node is only ever reached from here.
    Its scheme is the cluster's, so the baseline's edge is the same (TLS or not);
    with TLS its certificate comes from the local CA in its own state folder.
    """
    port = spec.bench.baseline_port or spec.nginx.port + 1
    scheme = "https" if spec.tls_enabled else "http"
    cluster = spec.cluster.model_copy(
        update={
            "name": spec.stack + SINGLE_NODE_SUFFIX,
            "url": f"{scheme}://127.0.0.1:{port}",
            "state_dir": str(state_dir),
        }
    )
    nginx = spec.nginx.model_copy(update={"port": port, "http_port": spec.nginx.http_port + 1})
    # An operator's certificate names the public host, not the baseline's loopback URL.
    tls = TlsSection(hsts_max_age=spec.tls.hsts_max_age)
    # pretix's recipe has no waiting room: every buyer goes straight to pretix.
    room = WaitingRoomSection()
    return spec.model_copy(
        update={"cluster": cluster, "nginx": nginx, "tls": tls, "waiting_room": room}
    )


def plain_postgres_service(spec: ClusterSpec, images: ImageSet) -> blocks.Service:
    """PostgreSQL 15 without Patroni, with the cluster's server parameters."""
    args = ["pg-standalone"]
    for key, value in sorted(spec.postgres.server_parameters().items()):
        args += ["-c", f"{key}={value}"]
    return {
        "image": images["postgres"],
        "hostname": PG_SERVICE,
        "command": args,
        "volumes": [f"{blocks.data_volume(PG_SERVICE)}:/var/lib/postgresql/data"],
        "networks": ["db"],
        "secrets": [blocks.secret("pg_pretix_password", blocks.POSTGRES_UID)],
        "healthcheck": blocks.healthcheck(
            ["CMD", "pg_isready", "--quiet", "--host", "/var/run/postgresql"],
            **blocks.DATA_TIER_CHECK,
            start=60,
        ),
        # Fast shutdown: SIGTERM (smart) would wait for pretix's persistent connections.
        "stop_signal": "SIGINT",
        "stop_grace_period": "60s",
        "deploy": blocks.deploy("postgres", spec.postgres.memory),
    }


def lone_redis_service(spec: ClusterSpec, images: ImageSet) -> blocks.Service:
    """The image's `redis` role as a lone master: no peers, no sentinels to ask.

    ``REDIS_SENTINELS=","`` is one empty name, which the entrypoint skips (an
    empty value would fall back to its default sentinel names), and a
    restart need not wait for anyone to name the master.
    """
    env = {
        "REDIS_NODE_NAME": REDIS_SERVICE,
        "REDIS_NODES": REDIS_SERVICE,
        "REDIS_SENTINELS": ",",
        "REDIS_MASTER_NAME": spec.redis.master_name,
        "REDIS_ROLE_WAIT_S": "0",
    }
    return blocks.redis_like(spec, images, REDIS_SERVICE, "redis", env)


# What pretix's own Docker image runs when nothing is set: gunicorn with 2 x nproc sync
# workers, max-requests 1200 (jitter 50), and celery with one process per CPU.
RECIPE_PROCESSES = "gunicorn 2 x nproc sync workers, celery nproc processes (pretix's defaults)"


def recipe_process_counts(cores: int) -> tuple[int, int]:
    """(gunicorn workers, celery processes) of :data:`RECIPE_PROCESSES` on ``cores`` CPUs."""
    return 2 * cores, cores


_TUNED_BY_THE_CLUSTER = (
    "PRETIX_GUNICORN_WORKERS",
    "PRETIX_GUNICORN_THREADS",
    "PRETIX_GUNICORN_PRELOAD",
    "PRETIX_CELERY_CONCURRENCY",
)


def standalone_pretix_service(spec: ClusterSpec, images: ImageSet) -> blocks.Service:
    """gunicorn and celery in one container with pretix's own defaults for their processes.

    The environment the cluster's web and worker get, less the process counts the
    cluster tunes: the image then runs what pretix's Docker recipe runs.
    """
    web, worker = blocks.web_service(spec, images), blocks.worker_service(spec, images)
    memory = _add_memory(spec.web.memory, spec.worker.memory)
    env = {
        k: v
        for k, v in (web["environment"] | worker["environment"]).items()
        if k not in _TUNED_BY_THE_CLUSTER
    }
    service = blocks.pretix_service(spec, images, APP_ROLE, memory, 1, env)
    # pretix's own install is never restarted for a slow health check. Under load both
    # sync gunicorn workers are busy, the probe queues behind the buyers and times out,
    # and Swarm replaced the only container mid-run (seen: every buyer got 502s). So only
    # a container failing its check for ~10 minutes is replaced; the check still gates
    # the start (Swarm counts a task running once it is healthy).
    service["healthcheck"]["retries"] = 20
    return service


def _add_memory(*sizes: str) -> str:
    """``768M`` + ``1G`` -> ``1792M`` (the spec's MemorySize format)."""
    return f"{sum(mebibytes(s) for s in sizes)}M"
