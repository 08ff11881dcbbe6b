"""The cluster spec: the one source of truth for names, ports and replica counts.

`cluster.toml` is parsed into `ClusterSpec`; the stack, the daemons' configs,
`status` and the tests all read names and ports from here and never restate them.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pretix_cluster.errors import UserError

DEFAULT_SPEC_FILE = "cluster.toml"

MemorySize = Annotated[str, Field(pattern=r"^[0-9]+[MG]$")]
MEMORY_HELP = "memory limit per container; above it the kernel kills it and Swarm restarts it"
# A warm pretix process (gunicorn worker, celery process) holds 240-265 MiB RSS, much of it
# shared with its parent after the fork (session 8: a 2-process worker container used 451 MiB
# of its cgroup). One web replica with 4 workers in 768M was killed again and again under
# load ("Worker was sent SIGKILL! Perhaps out of memory?"): refuse such a spec instead.
MIB_PER_PRETIX_PROCESS = 192


def mebibytes(size: str) -> int:
    """``768M`` -> 768, ``2G`` -> 2048 (a :data:`MemorySize`)."""
    return int(size[:-1]) * (1024 if size.endswith("G") else 1)


def _enough_for_pretix(section: str, memory: str, processes: int, what: str) -> None:
    """One more process than asked for: gunicorn's master, celery's main process."""
    need = MIB_PER_PRETIX_PROCESS * (processes + 1)
    if mebibytes(memory) < need:
        raise ValueError(
            f"memory {memory} is too little for {processes} {what}: give [{section}] memory at "
            f"least {need}M ({MIB_PER_PRETIX_PROCESS}M per process and one for the parent), "
            "or fewer processes"
        )


class _Section(BaseModel):
    # A typo in cluster.toml must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSection(_Section):
    name: str = Field(
        "pretix",
        pattern=r"^[a-z][a-z0-9]{0,19}$",
        description="Swarm stack name; every Docker object of the cluster starts with it",
    )
    url: str = Field(
        "https://127.0.0.1:8080",
        description="the shop's public URL; pretix rejects requests for any other host. "
        "https: nginx serves TLS ([tls]); http: plain HTTP (TLS ends in front of it)",
    )
    state_dir: str = Field(
        ".pretix-cluster",
        description="secrets and tokens (0600), relative to this file; keep it out of git",
    )

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host name")
        if parts.path not in ("", "/"):
            raise ValueError("must not have a path: pretix is served at the root")
        return url.rstrip("/")


class NginxSection(_Section):
    port: int = Field(
        8080, ge=1, le=65535, description="the shop's published port, on every entry node"
    )
    http_port: int = Field(
        8088,
        ge=1,
        le=65535,
        description="with an https URL: plain HTTP, answered with a redirect to the shop",
    )
    memory: MemorySize = Field("64M", description=MEMORY_HELP)


class WaitingRoomSection(_Section):
    """Buyer admission at the edge: at a rush, buyers beyond the shop's capacity wait in line.

    Each nginx admits buyers in the order they came; the others get a page nginx answers
    itself (no pretix process spent on them) with their place in line, refreshed until
    a place in the shop is free. An admitted buyer is never sent back mid-checkout.
    """

    buyers_per_node: int = Field(
        0,
        ge=0,
        le=10000,
        description="buyers active in the shop at once through each entry node (nginx); "
        "the rest wait in line. 0: no waiting room. From the bench: sustained "
        "purchases/min x purchase time (min), divided by the entry nodes",
    )
    refresh: int = Field(
        5, ge=1, le=60, description="seconds between a waiting buyer's checks (the page reloads)"
    )
    active_timeout: int = Field(
        60,
        ge=5,
        le=3600,
        description="a buyer without a request for this long (s) no longer counts as "
        "active; they stay admitted",
    )
    admitted_for: int = Field(
        1800,
        ge=60,
        le=86400,
        description="an admitted buyer keeps access this long (s) after their last request "
        "(pretix's default cart reservation is 30 min)",
    )

    @property
    def enabled(self) -> bool:
        return self.buyers_per_node > 0

    @model_validator(mode="after")
    def _admission_outlives_activity(self) -> WaitingRoomSection:
        if self.admitted_for < self.active_timeout:
            raise ValueError(
                "admitted_for must be at least active_timeout: a buyer would lose access "
                "while still counted as active"
            )
        return self


class TlsSection(_Section):
    """The shop's certificate (an https URL only); none given: the tool's local CA issues one."""

    certificate: str = Field(
        "",
        description="PEM certificate (leaf first, then the chain), relative to this file; "
        "empty: issued by the local CA in the state folder (tls/ca.pem, for clients to trust)",
    )
    key: str = Field("", description="the certificate's PEM private key (unencrypted)")
    ca_file: str = Field(
        "",
        description="the CA bundle this machine's clients trust for the operator's "
        "certificate; empty: the system's",
    )
    hsts_max_age: int = Field(
        31536000, ge=0, description="Strict-Transport-Security max-age (s); 0: no HSTS header"
    )

    @model_validator(mode="after")
    def _certificate_with_key(self) -> TlsSection:
        if bool(self.certificate) != bool(self.key):
            raise ValueError("certificate and key go together: give both or neither")
        if self.ca_file and not self.certificate:
            raise ValueError("ca_file is for an operator's certificate: give certificate and key")
        return self


class WebSection(_Section):
    replicas: int = Field(2, ge=1, description="gunicorn containers behind nginx")
    gunicorn_workers: int = Field(2, ge=1, description="processes per web replica")
    # Measured (20 buyers, 120 s, quiet 2-core machine, results/tune-threads*):
    # 2 sync processes per replica held 82.1 purchases/min (p95 18.4 s, 1.24
    # CPU-s each), 2 x 4 gthreads only 66.2/min (p95 23.0 s, 1.45 CPU-s): the
    # node is CPU-bound, and threads add GIL contention, not throughput.
    gunicorn_threads: int = Field(
        1, ge=1, description="threads per process; >1 switches gunicorn to gthread"
    )
    metrics: bool = Field(
        True,
        description="pretix's /metrics endpoint (Prometheus text, basic auth): every request "
        "then also writes its duration to Redis",
    )
    preload: bool = Field(
        True,
        description="gunicorn loads pretix once, before it forks its workers: a worker "
        "recycled after max-requests (1200) starts at once instead of importing pretix anew",
    )
    memory: MemorySize = Field("768M", description=MEMORY_HELP)

    @model_validator(mode="after")
    def _memory_for_its_workers(self) -> WebSection:
        _enough_for_pretix("web", self.memory, self.gunicorn_workers, "gunicorn workers")
        return self


class WorkerSection(_Section):
    replicas: int = Field(2, ge=1, description="celery containers (checkout, mail, ...)")
    concurrency: int = Field(2, ge=1, description="celery processes per worker replica")
    memory: MemorySize = Field("768M", description=MEMORY_HELP)

    @model_validator(mode="after")
    def _memory_for_its_processes(self) -> WorkerSection:
        _enough_for_pretix("worker", self.memory, self.concurrency, "celery processes")
        return self


class CronSection(_Section):
    interval_seconds: int = Field(
        300, ge=60, le=3600, description="pause between two `runperiodic` runs (one runner only)"
    )
    memory: MemorySize = Field("320M", description=MEMORY_HELP)


class PostgresSection(_Section):
    nodes: int = Field(3, ge=2, le=9, description="Patroni nodes, one service each")
    synchronous: bool = Field(
        True, description="commit only once a standby has the WAL: no acknowledged order lost"
    )
    # Patroni's floor for ttl is 20 s. A crashed primary that Swarm restarts keeps
    # its key and is primary again within seconds; ttl bounds only the case where
    # the old primary stays unreachable (partition, freeze, lost node).
    ttl: int = Field(
        20, ge=20, description="Patroni leader key TTL (s): failover time of an unreachable primary"
    )
    loop_wait: int = Field(5, ge=1, description="seconds between two Patroni HA loops")
    retry_timeout: int = Field(
        7, ge=3, description="DCS/PostgreSQL retries (s) before a leader demotes itself"
    )
    maximum_lag_on_failover: int = Field(1048576, ge=0)
    failsafe_mode: bool = Field(
        True,
        description="a primary that loses etcd keeps serving while every member still answers it",
    )
    # pretix's side of a failover: a new connection retries while HAProxy has no primary.
    # Below gunicorn's 60 s worker timeout; after a wait that ran out, pretix fails fast
    # for 30 s (an outage, not a failover) so that no worker is held again.
    connect_wait: int = Field(
        25,
        ge=0,
        le=50,
        description="seconds a new connection from pretix waits for a primary; 0: fail at once",
    )
    max_connections: int = Field(200, ge=20)
    shared_buffers: str = "128MB"
    memory: MemorySize = Field("384M", description=MEMORY_HELP)

    def dcs_settings(self) -> dict[str, object]:
        """Patroni dynamic keys: patroni.yml bootstraps with them, `up` applies them."""
        return {
            "ttl": self.ttl,
            "loop_wait": self.loop_wait,
            "retry_timeout": self.retry_timeout,
            "maximum_lag_on_failover": self.maximum_lag_on_failover,
            "synchronous_mode": self.synchronous,
            "failsafe_mode": self.failsafe_mode,
        }

    def server_parameters(self) -> dict[str, object]:
        """PostgreSQL's own settings: Patroni's nodes and the single node's server alike.

        pg_stat_statements is loaded for `bench --profile` and for an operator's
        questions (which statements take the time); it costs a hash lookup per statement.
        """
        return {
            "max_connections": self.max_connections,
            "shared_buffers": self.shared_buffers,
            "shared_preload_libraries": "pg_stat_statements",
        }

    @model_validator(mode="after")
    def _patroni_timing_rule(self) -> PostgresSection:
        # Patroni's own rule: otherwise a healthy leader can lose its key between two loops.
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(
                f"loop_wait + 2*retry_timeout ({self.loop_wait + 2 * self.retry_timeout}) "
                f"must not exceed ttl ({self.ttl})"
            )
        return self


class EtcdSection(_Section):
    members: int = Field(3, ge=3, le=9, description="etcd members (odd) holding Patroni's state")
    memory: MemorySize = Field("128M", description=MEMORY_HELP)

    @field_validator("members")
    @classmethod
    def _odd(cls, members: int) -> int:
        if members % 2 == 0:
            raise ValueError("must be odd: an even etcd cluster tolerates no more failures")
        return members


class RedisSection(_Section):
    nodes: int = Field(3, ge=2, le=9, description="Redis nodes: one master, the rest replicas")
    sentinels: int = Field(3, ge=3, le=9, description="Sentinels watching the master (odd)")
    quorum: int = Field(2, ge=1, description="Sentinels that must agree the master is down")
    master_name: str = Field("mymaster", pattern=r"^[a-z][a-z0-9]*$")
    down_after_ms: int = Field(
        3000, ge=1000, description="Sentinel declares the master down after this silence"
    )
    failover_timeout_ms: int = Field(30000, ge=5000)
    memory: MemorySize = Field("128M", description=MEMORY_HELP)

    @model_validator(mode="after")
    def _sentinel_majority(self) -> RedisSection:
        if self.sentinels % 2 == 0:
            raise ValueError("sentinels must be odd so that a majority can authorise a failover")
        if self.quorum > self.sentinels:
            raise ValueError(f"quorum ({self.quorum}) exceeds the sentinels ({self.sentinels})")
        if self.quorum <= self.sentinels // 2:
            raise ValueError(
                f"quorum ({self.quorum}) must be a majority of {self.sentinels} sentinels, "
                "or two partitions could each declare the master down"
            )
        return self


class HaproxySection(_Section):
    replicas: int = Field(2, ge=1, description="HAProxy replicas routing to the primary/master")
    check_inter_ms: int = Field(1000, ge=200)
    check_fall: int = Field(2, ge=1)
    check_rise: int = Field(2, ge=1)
    memory: MemorySize = Field("64M", description=MEMORY_HELP)


class ShopSection(_Section):
    organizer: str = Field("demo", pattern=r"^[a-z0-9][a-z0-9-]*$")
    event: str = Field("tickets", pattern=r"^[a-z0-9][a-z0-9-]*$")
    quota: int = Field(10000, ge=1, description="tickets on sale in the demo event")
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$")


MANAGED_REGISTRY = "managed"


class ImagesSection(_Section):
    registry: str = Field(
        "",
        pattern=r"^([a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*)?$",
        description='host[:port][/path] every node pulls the images from; "managed": a '
        "registry the tool runs itself on the manager it talks to (stack <name>-registry, TLS "
        "from the tool's CA, a password); empty: this machine's images (a single-node swarm)",
    )
    registry_port: int = Field(
        5443, ge=1, le=65535, description="managed registry: its port on the manager (host mode)"
    )
    base: str = "debian:bookworm-slim"

    @property
    def managed(self) -> bool:
        return self.registry == MANAGED_REGISTRY


class PlacementSection(_Section):
    """Which Swarm nodes run what (one node: everything there, as before)."""

    nodes: list[str] = Field(
        [],
        description="hostnames of the nodes that may hold PostgreSQL, etcd, Redis and "
        "Sentinel members, each member of a kind on its own node; empty: every node",
    )
    entry_nodes: list[str] = Field(
        [],
        description="hostnames of the nodes where nginx publishes the shop port "
        "(put them behind DNS round robin or a load balancer); empty: every node",
    )


class MediaSection(_Section):
    """Where pretix's media (uploads, generated tickets) live: every web and worker sees it."""

    kind: Literal["volume", "bind", "nfs", "s3"] = Field(
        "volume",
        description="volume: a Docker volume on this node (one node only); bind: a directory "
        "at `path` on every node (a shared disk); nfs: an NFS export mounted by Docker on "
        "every node; s3: an S3-compatible bucket (credentials: the secrets s3_access_key and "
        "s3_secret_key in the state folder)",
    )
    path: str = Field("", description="bind: the shared directory; nfs: the exported path")
    nfs_server: str = Field("", description="nfs: the server's host name or address")
    nfs_options: str = Field(
        "nfsvers=4.1,rw,hard,timeo=600", description="nfs: mount options besides addr="
    )
    s3_endpoint: str = Field("", description="s3: the endpoint URL, e.g. https://s3.example.org")
    s3_bucket: str = Field("", description="s3: the bucket")
    s3_region: str = Field("", description="s3: the region, if the provider needs one")

    @model_validator(mode="after")
    def _kind_has_its_settings(self) -> MediaSection:
        needed = {
            "bind": ["path"],
            "nfs": ["nfs_server", "path"],
            "s3": ["s3_endpoint", "s3_bucket"],
        }.get(self.kind, [])
        missing = [key for key in needed if not getattr(self, key)]
        if missing:
            raise ValueError(f"kind = {self.kind!r} needs {' and '.join(missing)}")
        if self.kind in ("bind", "nfs") and not self.path.startswith("/"):
            raise ValueError("path must be absolute")
        return self


@dataclass(frozen=True)
class Ports:
    """Container-internal ports: fixed by the images, so not a setting of cluster.toml.

    Named once here; the stack, every daemon's rendered config, the entrypoints
    (through that config or the stack's environment) and `status` read them.
    """

    postgres: int = 5432
    patroni: int = 8008
    etcd_client: int = 2379
    etcd_peer: int = 2380
    redis: int = 6379
    sentinel: int = 26379
    haproxy_pg_primary: int = 5000
    haproxy_pg_replicas: int = 5001
    haproxy_redis: int = 6379
    haproxy_health: int = 8405
    web: int = 8000
    nginx: int = 8080
    # With TLS: nginx's plain HTTP server (redirects, and the health check's /nginx-health).
    nginx_http: int = 8081


PORTS = Ports()


class BenchSection(_Section):
    """`pretix-cluster bench`: the single-node baseline and the default load."""

    baseline_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="published port of the baseline stack `<name>-base`; 0: the nginx port + 1",
    )
    target: float = Field(
        60.0,
        gt=0,
        description="purchases/min at 1x of the bench's phases (0.5x, 1x, 2x, 10x); "
        "2x is near the capacity of a 2-core machine, 10x is overload",
    )


def swarm_service_name(stack: str, short: str) -> str:
    """Swarm prefixes every service of a stack with the stack name."""
    return f"{stack}_{short}"


def _numbered(prefix: str, count: int) -> list[str]:
    """Stable names (pg-1, pg-2, ...): a node keeps its name, volume and DNS entry."""
    return [f"{prefix}-{i}" for i in range(1, count + 1)]


class ClusterSpec(_Section):
    cluster: ClusterSection = ClusterSection()
    nginx: NginxSection = NginxSection()
    waiting_room: WaitingRoomSection = WaitingRoomSection()
    tls: TlsSection = TlsSection()
    web: WebSection = WebSection()
    worker: WorkerSection = WorkerSection()
    cron: CronSection = CronSection()
    postgres: PostgresSection = PostgresSection()
    etcd: EtcdSection = EtcdSection()
    redis: RedisSection = RedisSection()
    haproxy: HaproxySection = HaproxySection()
    shop: ShopSection = ShopSection()
    images: ImagesSection = ImagesSection()
    placement: PlacementSection = PlacementSection()
    media: MediaSection = MediaSection()
    bench: BenchSection = BenchSection()

    @model_validator(mode="after")
    def _registry_port_is_not_the_shops(self) -> ClusterSpec:
        if self.images.managed and self.images.registry_port == self.nginx.port:
            raise ValueError(
                f"the managed registry's port {self.images.registry_port} is the shop's "
                "([nginx] port); set another [images] registry_port"
            )
        return self

    # --- names derived from the spec; nothing else invents them ---

    @property
    def stack(self) -> str:
        return self.cluster.name

    @property
    def pg_nodes(self) -> list[str]:
        return _numbered("pg", self.postgres.nodes)

    @property
    def etcd_members(self) -> list[str]:
        return _numbered("etcd", self.etcd.members)

    @property
    def redis_nodes(self) -> list[str]:
        return _numbered("redis", self.redis.nodes)

    @property
    def sentinel_nodes(self) -> list[str]:
        return _numbered("sentinel", self.redis.sentinels)

    @property
    def member_groups(self) -> dict[str, list[str]]:
        """The stateful members by kind; on several nodes, each of a kind on its own node."""
        return {
            "etcd": self.etcd_members,
            "PostgreSQL": self.pg_nodes,
            "Redis": self.redis_nodes,
            "Sentinel": self.sentinel_nodes,
        }

    @property
    def stateful_nodes(self) -> list[str]:
        """The singleton services that own a volume: never replicated, never renamed."""
        return [member for group in self.member_groups.values() for member in group]

    @property
    def shop_host(self) -> str:
        return urlsplit(self.cluster.url).hostname or "localhost"

    @property
    def shop_netloc(self) -> str:
        """The Host header pretix expects: host and, if any, port of the shop URL."""
        return urlsplit(self.cluster.url).netloc

    def service_name(self, short: str) -> str:
        return swarm_service_name(self.stack, short)

    def state_path(self, spec_dir: Path) -> Path:
        path = Path(self.cluster.state_dir)
        return path if path.is_absolute() else spec_dir / path

    @property
    def tls_enabled(self) -> bool:
        """An https URL: nginx terminates TLS and redirects its HTTP port there."""
        return urlsplit(self.cluster.url).scheme == "https"

    def local_url(self) -> str:
        """Where this machine reaches nginx: the published port on loopback."""
        return f"{urlsplit(self.cluster.url).scheme}://127.0.0.1:{self.nginx.port}"

    @model_validator(mode="after")
    def _edge_ports_differ(self) -> ClusterSpec:
        if self.tls_enabled and self.nginx.http_port == self.nginx.port:
            raise ValueError("[nginx] http_port must differ from port (the HTTPS port)")
        return self


def spec_toml(spec: ClusterSpec | None = None) -> str:
    """The commented cluster.toml that `init` writes, generated from the model itself."""
    spec = spec or ClusterSpec()
    lines = ["# pretix-cluster spec, read by every command. Keys left out take the defaults.", ""]
    for section, field in ClusterSpec.model_fields.items():
        lines.append(f"[{section}]")
        values = getattr(spec, section)
        for key, sub in field.annotation.model_fields.items():
            if sub.description:
                lines.append(f"# {sub.description}")
            lines.append(f"{key} = {_toml_value(getattr(values, key))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def load_spec(path: Path) -> ClusterSpec:
    """Read and validate cluster.toml; every problem becomes one readable sentence."""
    if not path.exists():
        return ClusterSpec()
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(
            f"{path} is not valid TOML ({exc}); fix the file or run `init --force`."
        ) from None
    return parse_spec(raw, origin=str(path))


def parse_spec(raw: dict, origin: str = "cluster.toml") -> ClusterSpec:
    try:
        return ClusterSpec.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{origin}: {describe_validation_error(exc)}") from None


# Keys that cluster.toml once accepted: why they are gone and what to do.
RETIRED_KEYS = {"ports": "the container ports are fixed by the images; remove the [ports] section"}


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        problems.append(f"{where}: {_problem(where, err)}")
    return "; ".join(problems) + "."


def _problem(where: str, err: dict) -> str:
    if err["type"] != "extra_forbidden":
        return err["msg"].removeprefix("Value error, ")
    if where in RETIRED_KEYS:
        return RETIRED_KEYS[where]
    return "unknown key; remove it or fix its spelling (`init` writes every valid key)"
