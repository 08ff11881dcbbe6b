"""`status`: what every layer of the cluster says about itself, and a verdict.

Each probe asks the component itself (Swarm, Patroni's REST API, Sentinel,
HAProxy's stats socket, pretix's /healthcheck/ through nginx), from inside the
cluster's own containers, so nothing internal has to be published.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field

import httpx

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster

PATRONI_CLUSTER_PROBE = (
    "import urllib.request;"
    "print(urllib.request.urlopen('http://127.0.0.1:{port}/cluster', timeout=5).read().decode())"
)
REDIS_PASSWORD_SECRET = "/run/secrets/redis_password"
HAPROXY_STAT_COMMAND = [
    "sh",
    "-c",
    "echo 'show stat' | socat stdio UNIX:/var/run/haproxy/admin.sock",
]


@dataclass
class Status:
    services: list[dict] = field(default_factory=list)
    etcd: list[dict] = field(default_factory=list)
    patroni: list[dict] = field(default_factory=list)
    redis: list[dict] = field(default_factory=list)
    haproxy: list[dict] = field(default_factory=list)
    healthcheck: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return asdict(self) | {"healthy": self.healthy}


def collect(cluster: Cluster) -> Status:
    status = Status()
    _services(cluster, status)
    if not status.services:
        status.problems.append(f"stack {cluster.stack} is not deployed")
        return status
    _etcd(cluster, status)
    _patroni(cluster, status)
    _redis(cluster, status)
    _haproxy(cluster, status)
    _healthcheck(cluster, status)
    return status


def _services(cluster: Cluster, status: Status) -> None:
    for state in swarm.service_states(cluster.client, cluster.stack):
        status.services.append(asdict(state) | {"healthy": state.healthy})
        if not state.healthy:
            status.problems.append(f"{state.name}: {state.running}/{state.desired} running")


def _exec_first(cluster: Cluster, candidates: list[str], command: list[str]) -> str | None:
    """Ask the first running container among the candidates; None when none answers."""
    for short in candidates:
        for container in swarm.running_containers(cluster.client, cluster.stack, short):
            code, output = swarm.exec_in(container, command, timeout=20)
            if code == 0:
                return output
    return None


def _etcd(cluster: Cluster, status: Status) -> None:
    spec = cluster.spec
    command = [
        "etcdctl",
        f"--endpoints=http://127.0.0.1:{spec.ports.etcd_client}",
        "--command-timeout=4s",
        "endpoint",
        "health",
        "--cluster",
        "-w",
        "json",
    ]
    # etcdctl exits non-zero when any member is unhealthy; its JSON still says which.
    output = _exec_first(cluster, spec.etcd_members, ["sh", "-c", " ".join(command) + " || true"])
    line = next((x for x in (output or "").splitlines() if x.startswith("[")), None)
    if line is None:
        status.problems.append("no etcd member answers")
        return
    status.etcd = [{"endpoint": m["endpoint"], "healthy": m["health"]} for m in json.loads(line)]
    healthy = sum(1 for m in status.etcd if m["healthy"])
    if healthy < spec.etcd.members:
        status.problems.append(f"etcd has {healthy} healthy members, expected {spec.etcd.members}")


def _patroni(cluster: Cluster, status: Status) -> None:
    spec = cluster.spec
    probe = PATRONI_CLUSTER_PROBE.format(port=spec.ports.patroni)
    output = _exec_first(cluster, spec.pg_nodes, ["python3", "-c", probe])
    if output is None:
        status.problems.append("no Patroni node answers")
        return
    members = json.loads(output).get("members", [])
    status.patroni = [
        {k: m.get(k) for k in ("name", "role", "state", "lag", "timeline", "host")} for m in members
    ]
    leaders = [m for m in members if m.get("role") == "leader" and m.get("state") == "running"]
    streaming = [m for m in members if m.get("role") != "leader" and m.get("state") == "streaming"]
    sync = [m for m in members if m.get("role") == "sync_standby"]
    if len(leaders) != 1:
        status.problems.append(f"PostgreSQL has {len(leaders)} running leaders, expected 1")
    if len(streaming) < spec.postgres.nodes - 1:
        status.problems.append(
            f"PostgreSQL has {len(streaming)} streaming replicas, "
            f"expected {spec.postgres.nodes - 1}"
        )
    if spec.postgres.synchronous and not sync:
        status.problems.append("PostgreSQL has no synchronous standby")


def _redis(cluster: Cluster, status: Status) -> None:
    spec = cluster.spec
    name = spec.redis.master_name
    port = str(spec.ports.sentinel)
    master = _exec_first(cluster, spec.sentinel_nodes, _sentinel_command(port, "master", name))
    replicas = _exec_first(cluster, spec.sentinel_nodes, _sentinel_command(port, "replicas", name))
    if master is None or replicas is None:
        status.problems.append("no Sentinel answers")
        return
    m = _pairs(master.split("\n"))
    status.redis.append(
        {"name": m.get("ip"), "role": "master", "flags": m.get("flags"), "link": "-"}
    )
    for r in _records(replicas):
        status.redis.append(
            {
                "name": r.get("ip"),
                "role": "replica",
                "flags": r.get("flags"),
                "link": r.get("master-link-status"),
            }
        )
    if any(f in (m.get("flags") or "") for f in ("s_down", "o_down")) or not m:
        status.problems.append(f"Redis master {m.get('ip')} is down ({m.get('flags')})")
    good = [r for r in status.redis[1:] if r["flags"] == "slave" and r["link"] == "ok"]
    if len(good) < spec.redis.nodes - 1:
        status.problems.append(
            f"Redis has {len(good)} healthy replicas, expected {spec.redis.nodes - 1}"
        )


def _sentinel_command(port: str, *args: str) -> list[str]:
    """Sentinels require the password: read inside the container, never on a command line."""
    return [
        "sh",
        "-c",
        f'REDISCLI_AUTH="$(cat {REDIS_PASSWORD_SECRET})" exec redis-cli -p {port} sentinel '
        + " ".join(args),
    ]


def _pairs(lines: list[str]) -> dict[str, str]:
    """redis-cli prints a map as alternating key and value lines."""
    lines = [line.strip() for line in lines if line.strip()]
    return dict(zip(lines[0::2], lines[1::2], strict=False))


def _records(output: str) -> list[dict[str, str]]:
    """`SENTINEL REPLICAS` prints one map per replica, each starting with `name`."""
    records: list[list[str]] = []
    for line in (x.strip() for x in output.split("\n") if x.strip()):
        if line == "name" and (not records or len(records[-1]) % 2 == 0):
            records.append([])
        if records:
            records[-1].append(line)
    return [_pairs(r) for r in records]


def _haproxy(cluster: Cluster, status: Status) -> None:
    containers = swarm.running_containers(cluster.client, cluster.stack, "haproxy")
    for container in containers:
        code, output = swarm.exec_in(container, HAPROXY_STAT_COMMAND, timeout=20)
        if code != 0:
            status.problems.append(f"HAProxy {container.name[:30]} does not answer")
            continue
        rows = list(csv.DictReader(io.StringIO(output.lstrip("# "))))
        servers = [r for r in rows if r.get("svname") not in ("FRONTEND", "BACKEND", None)]
        for r in servers:
            status.haproxy.append(
                {
                    "haproxy": container.name.split(".")[1]
                    if "." in container.name
                    else container.name,
                    "backend": r["pxname"],
                    "server": r["svname"],
                    "status": r["status"],
                }
            )
        _check_single_active(status, servers)


def _check_single_active(status: Status, servers: list[dict]) -> None:
    """The primary and Redis backends must each route to exactly one server."""
    backends: dict[str, int] = {}
    for r in servers:
        backends.setdefault(r["pxname"], 0)
        if r["status"].startswith("UP"):
            backends[r["pxname"]] += 1
    for backend, up in backends.items():
        if ("replica" not in backend) and up != 1:
            status.problems.append(f"HAProxy backend {backend} has {up} servers UP, expected 1")


def _healthcheck(cluster: Cluster, status: Status) -> None:
    url = cluster.spec.local_url() + "/healthcheck/"
    try:
        response = httpx.get(url, headers={"Host": cluster.spec.shop_netloc}, timeout=10)
        status.healthcheck = {"url": url, "status": response.status_code}
    except httpx.HTTPError as exc:
        status.healthcheck = {"url": url, "error": str(exc)[:120]}
    if status.healthcheck.get("status") != 200:
        status.problems.append(f"pretix /healthcheck/ through nginx: {status.healthcheck}")
