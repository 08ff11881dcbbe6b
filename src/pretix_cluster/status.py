"""`status`: what every layer of the cluster says about itself, and a verdict.

Each probe asks the component itself (Swarm, Patroni's REST API, Sentinel,
HAProxy's stats socket, pretix's /healthcheck/ through nginx), from inside the
cluster's own containers, so nothing internal has to be published.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from dataclasses import asdict, dataclass, field

import httpx
from docker.models.containers import Container

from pretix_cluster import swarm
from pretix_cluster.cluster import Cluster

PATRONI_CLUSTER_PROBE = (
    "import urllib.request;"
    "print(urllib.request.urlopen('http://127.0.0.1:{port}/cluster', timeout=5).read().decode())"
)
REDIS_PASSWORD_SECRET = "/run/secrets/redis_password"
SENTINEL_SEPARATOR = "\n--pretix-cluster--\n"
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


def _exec_first(
    cluster: Cluster, candidates: list[str], command: list[str], timeout: float = 20
) -> str | None:
    """Ask the first running container among the candidates; None when none answers."""
    for short in candidates:
        for container in swarm.running_containers(cluster.client, cluster.stack, short):
            try:
                code, output = swarm.exec_in(container, command, timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
            if code == 0:
                return output
    return None


def etcdctl_command(cluster: Cluster, *args: str) -> list[str]:
    """etcdctl against the member it runs in, with a short timeout, JSON output."""
    port = cluster.spec.ports.etcd_client
    return [
        "etcdctl",
        f"--endpoints=http://127.0.0.1:{port}",
        "--command-timeout=4s",
        *args,
        "-w",
        "json",
    ]


def _etcd(cluster: Cluster, status: Status) -> None:
    spec = cluster.spec
    command = etcdctl_command(cluster, "endpoint", "health", "--cluster")
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


def patroni_members(
    cluster: Cluster, candidates: list[str] | None = None, timeout: float = 20
) -> list[dict] | None:
    """Patroni's /cluster members as the first answering node sees them; None: none answers."""
    probe = PATRONI_CLUSTER_PROBE.format(port=cluster.spec.ports.patroni)
    output = _exec_first(
        cluster, candidates or cluster.spec.pg_nodes, ["python3", "-c", probe], timeout
    )
    if output is None:
        return None
    members = json.loads(output).get("members", [])
    return [
        {k: m.get(k) for k in ("name", "role", "state", "lag", "timeline", "host")} for m in members
    ]


def _patroni(cluster: Cluster, status: Status) -> None:
    spec = cluster.spec
    members = patroni_members(cluster)
    if members is None:
        status.problems.append("no Patroni node answers")
        return
    status.patroni = members
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


def sentinel_view(
    cluster: Cluster, candidates: list[str] | None = None, timeout: float = 20
) -> tuple[dict[str, str], list[dict[str, str]]] | None:
    """Sentinel's master record and replica records; None when no Sentinel answers."""
    spec = cluster.spec
    name = spec.redis.master_name
    port = str(spec.ports.sentinel)
    nodes = candidates or spec.sentinel_nodes
    # One exec for both questions: half the cost, and both answers from the same Sentinel.
    command = _sentinel_command(port, f"master {name}", f"replicas {name}")
    output = _exec_first(cluster, nodes, command, timeout)
    if output is None or SENTINEL_SEPARATOR not in output:
        return None
    master, replicas = output.split(SENTINEL_SEPARATOR, 1)
    return _pairs(master.split("\n")), _records(replicas)


def _redis(cluster: Cluster, status: Status) -> None:
    spec = cluster.spec
    view = sentinel_view(cluster)
    if view is None:
        status.problems.append("no Sentinel answers")
        return
    m, replica_records = view
    status.redis.append(
        {"name": m.get("ip"), "role": "master", "flags": m.get("flags"), "link": "-"}
    )
    for r in replica_records:
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


def _sentinel_command(port: str, *questions: str) -> list[str]:
    """Sentinels require the password: read inside the container, never on a command line.

    Several questions are asked in one shell, their answers split by a separator line.
    """
    calls = [f"redis-cli -p {port} sentinel {q}" for q in questions]
    return [
        "sh",
        "-c",
        f'export REDISCLI_AUTH="$(cat {REDIS_PASSWORD_SECRET})" && '
        + f" && echo '{SENTINEL_SEPARATOR.strip()}' && ".join(calls),
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


def haproxy_servers(container: Container, timeout: float = 20) -> list[dict] | None:
    """The server rows of one HAProxy's stats socket; None when it does not answer."""
    try:
        code, output = swarm.exec_in(container, HAPROXY_STAT_COMMAND, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if code != 0:
        return None
    rows = list(csv.DictReader(io.StringIO(output.lstrip("# "))))
    return [r for r in rows if r.get("svname") not in ("FRONTEND", "BACKEND", None)]


def task_label(container: Container) -> str:
    """`pretix_haproxy.1.abc` -> `1`: which replica, short enough for a table."""
    return container.name.split(".")[1] if "." in container.name else container.name


def _haproxy(cluster: Cluster, status: Status) -> None:
    containers = swarm.running_containers(cluster.client, cluster.stack, "haproxy")
    for container in containers:
        servers = haproxy_servers(container)
        if servers is None:
            status.problems.append(f"HAProxy {container.name[:30]} does not answer")
            continue
        for r in servers:
            status.haproxy.append(
                {
                    "haproxy": task_label(container),
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


def healthcheck(cluster: Cluster, timeout: float = 10) -> dict:
    """pretix's /healthcheck/ through nginx on this machine: its status code or the error."""
    url = cluster.spec.local_url() + "/healthcheck/"
    try:
        response = httpx.get(url, headers={"Host": cluster.spec.shop_netloc}, timeout=timeout)
        return {"url": url, "status": response.status_code}
    except httpx.HTTPError as exc:
        return {"url": url, "error": str(exc)[:120]}


def _healthcheck(cluster: Cluster, status: Status) -> None:
    status.healthcheck = healthcheck(cluster)
    if status.healthcheck.get("status") != 200:
        status.problems.append(f"pretix /healthcheck/ through nginx: {status.healthcheck}")
