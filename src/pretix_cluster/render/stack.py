"""The Swarm stack's building blocks: one function per service kind, as Python data.

The topologies (:mod:`pretix_cluster.render.topology`) compose them into whole
stacks; nothing here decides which services a deployment has.

Design choices that matter for availability:
- every service uses `dnsrr` endpoints and nginx publishes in `host` mode: no
  IPVS. Swarm's VIPs and ingress mesh need the kernel's IPVS, which is missing on
  some hosts (this kind of machine: "Could not get ipvs family information",
  every VIP connect fails with EHOSTUNREACH). DNS round robin works everywhere,
  a dead task's name stops resolving at once, and host-mode publishing keeps
  the buyer's real address for pretix;
- stateful singletons (PostgreSQL, etcd, Redis, Sentinel) are one service each
  with their own volume and a stable name;
- web and nginx update start-first, so a rolling update never drops requests;
- backing services sit on their own overlay networks and publish nothing. The
  networks are deliberately not `internal`: there Docker's DNS forwards the name
  of a stopped peer upstream with no route and each lookup hangs ~20 s, which
  stalls Patroni, HAProxy and Sentinel exactly during a failover (measured).
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from pretix_cluster.daemons import nginx, redis
from pretix_cluster.daemons.pretix import LIVE_PATH
from pretix_cluster.images.build import ImageSet
from pretix_cluster.render.configs import (
    ClusterFile,
    redis_config_name,
)
from pretix_cluster.spec import PORTS, ClusterSpec

STACK_VERSION = "3.8"
PRETIX_UID = "15371"
POSTGRES_UID = "999"
REDIS_UID = "998"
ETCD_UID = "998"
HAPROXY_UID = "997"
MEDIA_MOUNT = "/data/media"
MEDIA_VOLUME = "media"
ROLE_LABEL = "pretix-cluster.role"
# Seconds beyond Sentinel's down-after for the failover itself (vote, promotion).
REDIS_RESTART_MARGIN_S = 5

Service = dict[str, Any]


# dcs: etcd and its only clients, the Patroni nodes; nothing else reaches etcd.
NETWORKS = ("dcs", "db", "cache", "front")
# Every data volume carries the fingerprint of the secrets its data was made with.
MADE_WITH_LABEL = "pretix-cluster.made-with"


def stack_document(
    spec: ClusterSpec,
    services: dict[str, Service],
    data_volumes: list[str],
    files: dict[str, ClusterFile],
    made_with: str | None = None,
) -> dict:
    """A complete stack file as data: services, their networks, volumes, secrets and configs.

    ``made_with``: the fingerprint of the secrets the data volumes hold, a label of
    each (Docker sets it when it creates the volume and never changes it after).
    """
    labels = {MADE_WITH_LABEL: made_with} if made_with else {}
    volumes = {name: {"labels": dict(labels)} if labels else {} for name in data_volumes}
    volumes |= media_volume_definition(spec)
    used = {n for service in services.values() for n in service.get("networks", [])}
    return {
        "version": STACK_VERSION,
        "services": services,
        # attachable: the tool's one-off jobs and the chaos suite join them.
        "networks": {
            name: {"driver": "overlay", "attachable": True} for name in NETWORKS if name in used
        },
        "volumes": volumes,
        "secrets": external_objects(spec, files, secret=True),
        "configs": external_objects(spec, files, secret=False),
    }


def dump_stack(stack: dict) -> str:
    return yaml.safe_dump(stack, sort_keys=False, default_flow_style=False)


def data_volume(service: str) -> str:
    """Each stateful service owns one volume named after it."""
    return f"{service}-data"


def media_volume_definition(spec: ClusterSpec) -> dict[str, dict]:
    """The stack's `media` volume: node-local, or an NFS export every node mounts itself.

    A bind mount needs no volume. S3 keeps a node-local one as pretix's scratch
    space; the media themselves go to the bucket (pretix_cluster_settings).
    """
    media = spec.media
    if media.kind == "bind":
        return {}
    if media.kind == "nfs":
        options = ",".join(o for o in (f"addr={media.nfs_server}", media.nfs_options) if o)
        nfs = {"type": "nfs", "o": options, "device": f":{media.path}"}
        return {MEDIA_VOLUME: {"driver": "local", "driver_opts": nfs}}
    return {MEDIA_VOLUME: {}}


def media_mount(spec: ClusterSpec, read_only: bool) -> str | dict:
    """How a pretix or nginx container sees the media at MEDIA_MOUNT."""
    if spec.media.kind == "bind":
        return {
            "type": "bind",
            "source": spec.media.path,
            "target": MEDIA_MOUNT,
            "read_only": read_only,
        }
    return f"{MEDIA_VOLUME}:{MEDIA_MOUNT}" + (":ro" if read_only else "")


def external_objects(spec: ClusterSpec, files: dict[str, ClusterFile], secret: bool) -> dict:
    return {
        f.name: {"external": True, "name": f.object_name(spec.stack)}
        for f in files.values()
        if f.secret == secret
    }


# --- building blocks -------------------------------------------------------


# The data tier's members (PostgreSQL, Redis, Sentinel, HAProxy) are checked every 5 s, 3
# misses: Swarm restarts a hung one after 15 s, and a restarted one is resolvable (Swarm's DNS
# lists healthy tasks only) within 5 s. Every check is a `docker exec`: measured ~45 ms of
# dockerd/containerd CPU outside the container plus ~23 ms inside, so the 3-s checks of the
# 11 members cost ~0.25 cores of an idle 2-core machine; 5 s saves 40 % of that.
DATA_TIER_CHECK = {"interval": 5, "timeout": 4, "retries": 3}


def healthcheck(
    test: list[str], interval: int = 10, timeout: int = 5, retries: int = 3, start: int = 30
) -> dict:
    return {
        "test": test,
        "interval": f"{interval}s",
        "timeout": f"{timeout}s",
        "retries": retries,
        "start_period": f"{start}s",
    }


def deploy(
    role: str,
    memory: str,
    replicas: int | None = 1,
    start_first: bool = False,
    restart_delay_s: int = 2,
) -> dict[str, Any]:
    """Swarm's deploy section; ``replicas=None``: one task on every eligible node (global)."""
    scale = {"mode": "global"} if replicas is None else {"mode": "replicated", "replicas": replicas}
    return scale | {
        "endpoint_mode": "dnsrr",
        "labels": {ROLE_LABEL: role},
        "restart_policy": {"condition": "any", "delay": f"{restart_delay_s}s", "window": "30s"},
        # A volume-backed singleton must stop before its successor opens the same data.
        "update_config": {
            "parallelism": 1,
            "delay": "5s",
            "order": "start-first" if start_first else "stop-first",
            # Rolling a stateful singleton back and forth only adds restarts.
            "failure_action": "rollback" if start_first else "continue",
        },
        "resources": {"limits": {"memory": memory}},
    }


def secret(name: str, uid: str, mode: int = 0o400, target: str | None = None) -> dict:
    return {"source": name, "target": target or name, "uid": uid, "gid": uid, "mode": mode}


def pin(service: Service, constraint: str) -> Service:
    """Run the service only on nodes matching ``constraint`` (a stateful member's node)."""
    placement = service["deploy"].setdefault("placement", {})
    placement.setdefault("constraints", []).append(constraint)
    return service


def spread(service: Service) -> Service:
    """Spread the service's replicas evenly over the nodes (one node: no effect)."""
    placement = service["deploy"].setdefault("placement", {})
    placement.setdefault("preferences", []).append({"spread": "node.id"})
    return service


# --- services --------------------------------------------------------------


def etcd_services(spec: ClusterSpec, images: ImageSet) -> dict[str, Service]:
    peer, client = PORTS.etcd_peer, PORTS.etcd_client
    initial_cluster = ",".join(f"{m}=http://{m}:{peer}" for m in spec.etcd_members)
    services = {}
    for member in spec.etcd_members:
        services[member] = {
            "image": images["etcd"],
            "hostname": member,
            "environment": {
                "ETCD_NAME": member,
                "ETCD_DATA_DIR": "/var/lib/etcd/data",
                "ETCD_INITIAL_CLUSTER": initial_cluster,
                "ETCD_INITIAL_CLUSTER_TOKEN": spec.stack,
                "ETCD_INITIAL_CLUSTER_STATE": "new",
                "ETCD_INITIAL_ADVERTISE_PEER_URLS": f"http://{member}:{peer}",
                "ETCD_ADVERTISE_CLIENT_URLS": f"http://{member}:{client}",
                "ETCD_LISTEN_PEER_URLS": f"http://0.0.0.0:{peer}",
                "ETCD_LISTEN_CLIENT_URLS": f"http://0.0.0.0:{client}",
                # Asked at start whether a cluster already runs (a member that lost its disk).
                "PEER_CLIENT_ENDPOINTS": ",".join(
                    f"http://{m}:{client}" for m in spec.etcd_members if m != member
                ),
            },
            "volumes": [f"{data_volume(member)}:/var/lib/etcd"],
            "networks": ["dcs"],
            # etcdctl-root's (status, the entrypoint's member replacement).
            "secrets": [secret("etcd_root_password", ETCD_UID)],
            "healthcheck": healthcheck(
                ["CMD", "/usr/local/bin/healthcheck.sh"], retries=6, start=60
            ),
            "deploy": deploy("etcd", spec.etcd.memory),
        }
    return services


def postgres_services(spec: ClusterSpec, images: ImageSet) -> dict[str, Service]:
    services = {}
    for node in spec.pg_nodes:
        services[node] = {
            "image": images["postgres"],
            "hostname": node,
            "environment": {
                "PATRONI_NAME": node,
                "PATRONI_RESTAPI_CONNECT_ADDRESS": f"{node}:{PORTS.patroni}",
                "PATRONI_POSTGRESQL_CONNECT_ADDRESS": f"{node}:{PORTS.postgres}",
            },
            "volumes": [f"{data_volume(node)}:/var/lib/postgresql/data"],
            "networks": ["db", "dcs"],
            "secrets": [
                secret("patroni.yml", POSTGRES_UID),
                secret("pg_pretix_password", POSTGRES_UID),
            ],
            # A restarted node is resolvable (and routable) only once healthy.
            "healthcheck": healthcheck(
                ["CMD", "/usr/local/bin/healthcheck.sh"], **DATA_TIER_CHECK, start=60
            ),
            # Patroni demotes cleanly on SIGTERM; give it time before SIGKILL.
            "stop_grace_period": "60s",
            "deploy": deploy("postgres", spec.postgres.memory),
        }
    return services


def redis_services(spec: ClusterSpec, images: ImageSet) -> dict[str, Service]:
    # What the entrypoint's role decision needs; the daemons' settings are in their configs.
    common_env = {
        "REDIS_NODES": ",".join(spec.redis_nodes),
        "REDIS_SENTINELS": ",".join(spec.sentinel_nodes),
        "REDIS_MASTER_NAME": spec.redis.master_name,
        "SENTINEL_QUORUM": str(spec.redis.quorum),
    }
    services = {}
    for node in spec.redis_nodes:
        services[node] = redis_like(
            spec, images, node, "redis", common_env | {"REDIS_NODE_NAME": node}
        )
    for node in spec.sentinel_nodes:
        services[node] = redis_like(
            spec, images, node, "sentinel", common_env | {"SENTINEL_NODE_NAME": node}
        )
    return services


def redis_like(
    spec: ClusterSpec, images: ImageSet, node: str, role: str, env: dict[str, str]
) -> Service:
    """A Redis node or a Sentinel: `node`'s rendered config mounted as /run/secrets/<role>.conf."""
    memory = spec.redis.memory
    ports = {"REDIS_PORT": str(PORTS.redis), "SENTINEL_PORT": str(PORTS.sentinel)}
    return {
        "image": images["redis"],
        "hostname": node,
        "command": [role],
        "environment": env | ports,
        # Data and Sentinel's state only. The daemon runs from a config file it
        # rewrites with the password in it, kept on the container's own tmpfs
        # (redis.RUNTIME_DIR): a tmpfs mount declared here would be root's 0755,
        # and the stack format cannot set its mode for the image's uid.
        "volumes": [f"{data_volume(node)}:{redis.DATA_DIR}"],
        "networks": ["cache"],
        "secrets": [
            secret("redis_password", REDIS_UID),
            secret(redis_config_name(node), REDIS_UID, target=f"{role}.conf"),
        ],
        "healthcheck": healthcheck(["CMD", "redis-healthcheck", role], **DATA_TIER_CHECK, start=30),
        # Longer than redis' own shutdown-timeout (10 s), which waits for replicas.
        "stop_grace_period": "20s",
        "deploy": deploy(role, memory, restart_delay_s=_redis_restart_delay_s(spec, role)),
    }


def _redis_restart_delay_s(spec: ClusterSpec, role: str) -> int:
    """A crashed Redis node comes back only once Sentinel has had time to replace it.

    Measured with an immediate restart: the killed master was back within
    Sentinel's down-after, asked the Sentinels, heard "you are the master",
    started as master with its AOF while Sentinel promoted a replica; HAProxy
    then saw two masters and refused connections (its single-writer rule) until
    Sentinel demoted the old one: 18.3 s without Redis. Coming back after the
    failover, the node hears the new master's name and starts as its replica.
    """
    if role != "redis":
        return 2
    return math.ceil(spec.redis.down_after_ms / 1000) + REDIS_RESTART_MARGIN_S


def haproxy_service(spec: ClusterSpec, images: ImageSet) -> Service:
    return {
        "image": images["haproxy"],
        # The healthcheck's; haproxy.cfg listens there.
        "environment": {"HAPROXY_HEALTH_PORT": str(PORTS.haproxy_health)},
        "networks": ["db", "cache"],
        "secrets": [secret("haproxy.cfg", HAPROXY_UID)],
        "healthcheck": healthcheck(["CMD", "haproxy-healthcheck"], **DATA_TIER_CHECK, start=10),
        "deploy": deploy("haproxy", spec.haproxy.memory, spec.haproxy.replicas, start_first=True),
    }


def pretix_service(
    spec: ClusterSpec,
    images: ImageSet,
    role: str,
    memory: str,
    replicas: int,
    env: dict[str, str],
    # Django + pretix take ~10 CPU-seconds per process to start: on a busy
    # 2-core node a 60 s grace let Swarm kill web tasks before their first
    # good check, again and again. Failures inside the grace do not count and a
    # success ends it at once, so a long one costs nothing on a healthy start.
    start: int = 180,
) -> Service:
    return {
        "image": images["pretix"],
        "command": [role],
        "environment": env,
        "volumes": [media_mount(spec, read_only=False)],
        "networks": ["db", "cache", "front"],
        "secrets": [secret("pretix.cfg", PRETIX_UID)],
        "healthcheck": healthcheck(
            ["CMD", "pretix-entrypoint", "healthcheck", role],
            # Liveness only (images/pretix/healthcheck.py): gunicorn answers, celery's
            # processes run, cron's heartbeat is fresh; never the data tier.
            interval=10,
            timeout=8,
            # A busy web replica answers its check late; 3 misses (30 s) got
            # healthy replicas killed under 20 buyers, which only made the
            # overload worse. A hung one is still replaced within ~70 s.
            retries=6,
            start=start,
        ),
        "stop_grace_period": "30s",
        "deploy": deploy(role, memory, replicas, start_first=role == "web"),
    }


def web_service(spec: ClusterSpec, images: ImageSet) -> Service:
    env = {
        "PRETIX_WEB_PORT": str(PORTS.web),  # gunicorn's and the healthcheck's
        "PRETIX_LIVE_PATH": LIVE_PATH,  # the healthcheck's, answered before Django
        "PRETIX_GUNICORN_WORKERS": str(spec.web.gunicorn_workers),
        "PRETIX_GUNICORN_THREADS": str(spec.web.gunicorn_threads),
        "PRETIX_GUNICORN_PRELOAD": "1" if spec.web.preload else "0",
    }
    return pretix_service(spec, images, "web", spec.web.memory, spec.web.replicas, env)


def worker_service(spec: ClusterSpec, images: ImageSet) -> Service:
    env = {"PRETIX_CELERY_CONCURRENCY": str(spec.worker.concurrency)}
    return pretix_service(spec, images, "worker", spec.worker.memory, spec.worker.replicas, env)


def cron_service(spec: ClusterSpec, images: ImageSet) -> Service:
    # Exactly one runner: pretix's periodic-task guard is not race-safe.
    env = {"PRETIX_CRON_INTERVAL": str(spec.cron.interval_seconds)}
    return pretix_service(
        spec, images, "cron", spec.cron.memory, 1, env, start=spec.cron.interval_seconds
    )


def nginx_service(spec: ClusterSpec, images: ImageSet) -> Service:
    service: Service = {
        "image": images["nginx"],
        # The healthcheck's: nginx.conf answers /nginx-health there in plain HTTP.
        "environment": {"NGINX_LISTEN_PORT": str(nginx.health_port(spec))},
        "networks": ["front"],
        "ports": [
            {
                "target": target,
                "published": published,
                "protocol": "tcp",
                # host mode: no IPVS needed, and pretix sees the buyer's address.
                "mode": "host",
            }
            for target, published in nginx.published_ports(spec).items()
        ],
        "volumes": [media_mount(spec, read_only=True)],
        "configs": [
            {"source": "nginx.conf", "target": "/etc/nginx/nginx.conf", "mode": 0o444},
            *[
                {"source": page, "target": f"{nginx.PAGES_DIR}/{page}", "mode": 0o444}
                for page in nginx.page_files(spec)
            ],
        ],
        "healthcheck": healthcheck(["CMD", "nginx-healthcheck"], start=10),
        # One per entry node (global): each publishes the shop's port on its machine.
        # stop-first: a host-mode port cannot be bound twice on one node, so a
        # start-first update would wait forever for a free node.
        "deploy": deploy("nginx", spec.nginx.memory, replicas=None),
    }
    secrets = [secret(name, nginx.NGINX_UID) for name in nginx.secret_files(spec)]
    if secrets:
        service["secrets"] = secrets
    return service
