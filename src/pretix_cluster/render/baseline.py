"""The single-node baseline of `pretix-cluster bench`, as a stack built from the same spec.

What pretix's own small-scale Docker install gives: one pretix container running
gunicorn and a celery worker (entrypoint role ``standalone``), one PostgreSQL
15 without Patroni (``pg-standalone``), one Redis without Sentinel, nginx in
front. No replication, no HAProxy, no etcd, no cron. Same images, same
per-process settings as one cluster web replica plus one worker replica
(gunicorn workers and threads, celery concurrency), same PostgreSQL parameters
and the same nginx and pretix.cfg templates, so the comparison measures what
the cluster adds (replication, HAProxy, more replicas) and nothing else.

The baseline is its own stack ``<name>-base`` with its own port (``[bench]
baseline_port``, default the cluster's nginx port + 1), volumes, networks,
secrets and state folder. Its services are named like the cluster's
components (``web``, ``pg``, ``redis``, ``nginx``), so that `up`'s migrations
and demo shop and the load test's CPU accounting work on it unchanged;
``web`` is gunicorn and celery together here.
"""

from __future__ import annotations

from pathlib import Path

from pretix_cluster.images.build import ImageSet
from pretix_cluster.render.configs import (
    ClusterFile,
    nginx_context,
    patroni_context,
    pretix_context,
    redis_file,
    template,
)
from pretix_cluster.render.stack import (
    POSTGRES_UID,
    STACK_VERSION,
    Service,
    _deploy,
    _external_objects,
    _healthcheck,
    _nginx_service,
    _pretix_service,
    _redis_like,
    _secret,
    _web_service,
    _worker_service,
)
from pretix_cluster.spec import PORTS, ClusterSpec

BASELINE_SUFFIX = "-base"
APP_ROLE = "standalone"  # the pretix image's role running gunicorn and celery together
PG_SERVICE = "pg"
REDIS_SERVICE = "redis"
# Volumes are named after their service, as in the cluster (pg-1-data, ...).
VOLUMES = (f"{PG_SERVICE}-data", f"{REDIS_SERVICE}-data", "media")


def baseline_spec(spec: ClusterSpec, state_dir: Path) -> ClusterSpec:
    """The cluster's spec with the baseline's name, port, URL and state folder.

    Not re-validated on purpose: the stack name ``<name>-base`` is a valid
    Docker name but longer than (and shaped unlike) what ``[cluster] name``
    accepts. The URL is loopback: the baseline is only ever reached from here.
    """
    port = spec.bench.baseline_port or spec.nginx.port + 1
    cluster = spec.cluster.model_copy(
        update={
            "name": spec.stack + BASELINE_SUFFIX,
            "url": f"http://127.0.0.1:{port}",
            "state_dir": str(state_dir),
        }
    )
    nginx = spec.nginx.model_copy(update={"port": port, "replicas": 1})
    return spec.model_copy(update={"cluster": cluster, "nginx": nginx})


def render_baseline_files(spec: ClusterSpec, values: dict[str, str]) -> dict[str, ClusterFile]:
    """pretix.cfg pointing straight at PostgreSQL and Redis, nginx.conf as the cluster's."""
    pretix = pretix_context(spec, values)
    pretix |= {
        "db": pretix["db"] | {"host": PG_SERVICE, "port": PORTS.postgres},
        "replica": None,
        "redis": {"host": REDIS_SERVICE, "port": PORTS.redis, "password": values["redis_password"]},
    }
    files = [
        template("pretix.cfg", True, **pretix),
        template("nginx.conf", False, **nginx_context(spec)),
        ClusterFile("pg_pretix_password", values["pg_pretix_password"], True),
        ClusterFile("redis_password", values["redis_password"], True),
        # A lone master: no replica could ever acknowledge a write.
        redis_file(values, REDIS_SERVICE, min_replicas_to_write=0),
    ]
    return {f.name: f for f in files}


def postgres_parameters(spec: ClusterSpec, values: dict[str, str]) -> dict[str, object]:
    """The cluster's PostgreSQL parameters (Patroni's), for the plain server too."""
    return dict(patroni_context(spec, values)["pg_parameters"])


def render_baseline_stack(
    spec: ClusterSpec,
    images: ImageSet,
    files: dict[str, ClusterFile],
    pg_parameters: dict[str, object],
) -> dict:
    """The baseline stack as data (`stack.dump_stack` turns it into YAML)."""
    services: dict[str, Service] = {
        PG_SERVICE: _postgres_service(spec, images, pg_parameters),
        REDIS_SERVICE: _redis_service(spec, images),
        "web": _app_service(spec, images),
        "nginx": _nginx_service(spec, images),
    }
    return {
        "version": STACK_VERSION,
        "services": services,
        "networks": {name: {"driver": "overlay", "attachable": True} for name in _networks()},
        "volumes": {name: {} for name in VOLUMES},
        "secrets": _external_objects(spec, files, secret=True),
        "configs": _external_objects(spec, files, secret=False),
    }


def data_tier(spec: ClusterSpec) -> set[str]:
    """The baseline's services that must be healthy before migrations run."""
    return {spec.service_name(PG_SERVICE), spec.service_name(REDIS_SERVICE)}


def _networks() -> list[str]:
    # The same three as the cluster: pretix's services attach to all of them.
    return ["db", "cache", "front"]


def _postgres_service(
    spec: ClusterSpec, images: ImageSet, parameters: dict[str, object]
) -> Service:
    args = ["pg-standalone"]
    for key, value in sorted(parameters.items()):
        args += ["-c", f"{key}={value}"]
    return {
        "image": images["postgres"],
        "hostname": PG_SERVICE,
        "command": args,
        "volumes": [f"{PG_SERVICE}-data:/var/lib/postgresql/data"],
        "networks": ["db"],
        "secrets": [_secret("pg_pretix_password", POSTGRES_UID)],
        "healthcheck": _healthcheck(
            ["CMD", "pg_isready", "--quiet", "--host", "/var/run/postgresql"],
            interval=3,
            timeout=4,
            retries=5,
            start=60,
        ),
        # Fast shutdown: SIGTERM (smart) would wait for pretix's persistent connections.
        "stop_signal": "SIGINT",
        "stop_grace_period": "60s",
        "deploy": _deploy("postgres", spec.postgres.memory),
    }


def _redis_service(spec: ClusterSpec, images: ImageSet) -> Service:
    """The image's `redis` role as a lone master: no peers, no sentinels to ask.

    ``REDIS_SENTINELS=","`` is one empty name, which the entrypoint skips (an
    empty value would fall back to its default sentinel names), and a
    restart need not wait for anyone to name the master.
    """
    env = {
        "REDIS_NODE_NAME": REDIS_SERVICE,
        "REDIS_NODES": REDIS_SERVICE,
        "REDIS_SENTINELS": ",",
        "REDIS_ROLE_WAIT_S": "0",
    }
    return _redis_like(spec, images, REDIS_SERVICE, "redis", env)


def _app_service(spec: ClusterSpec, images: ImageSet) -> Service:
    """gunicorn with one web replica's settings and celery with one worker replica's."""
    web, worker = _web_service(spec, images), _worker_service(spec, images)
    memory = _add_memory(spec.web.memory, spec.worker.memory)
    service = _pretix_service(
        spec, images, APP_ROLE, memory, 1, web["environment"] | worker["environment"]
    )
    # Two probes in one check (web's /healthcheck/, then celery's ping, a Django start-up
    # that took >16 s on the loaded 2-core machine): a longer timeout,
    # and as often as the worker's own check (the costly probe), so the baseline's
    # health checks cost what one web plus one worker replica's cost.
    service["healthcheck"]["timeout"] = "30s"
    service["healthcheck"]["interval"] = worker["healthcheck"]["interval"]
    # pretix's own install is never restarted for a slow health check. Under load both
    # sync gunicorn workers are busy, the probe queues behind the buyers and times out,
    # and Swarm replaced the only container mid-run (seen: every buyer got 502s). So only
    # a container failing its check for ~10 minutes is replaced; the check still gates
    # the start (Swarm counts a task running once it is healthy).
    service["healthcheck"]["retries"] = 20
    return service


def _add_memory(*sizes: str) -> str:
    """``768M`` + ``1G`` -> ``1792M`` (the spec's MemorySize format)."""
    factor = {"M": 1, "G": 1024}
    return f"{sum(int(s[:-1]) * factor[s[-1]] for s in sizes)}M"
