"""What the cluster itself sees, sampled about once a second while a scenario runs.

Detection, repair and rejoin times are read off these samples afterwards
(:mod:`analysis`), never guessed: HAProxy's server states (its stats socket),
Patroni's members and leader (/cluster), Sentinel's master and replicas,
etcd's member health, the Swarm tasks running per service, and pretix's
/healthcheck/ through nginx.
The probes are :mod:`pretix_cluster.status`'s own, asked in parallel with
short timeouts so that one hung component does not blind the others.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pretix_cluster import status, swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons.etcd import EndpointHealth
from pretix_cluster.daemons.haproxy import HaproxyView
from pretix_cluster.daemons.patroni import ClusterView
from pretix_cluster.daemons.redis import SentinelView

PROBE_TIMEOUT_S = 4.0


@dataclass(frozen=True)
class Sample:
    """One observation of every layer at ``t``; a probe that did not answer is None.

    ``haproxy``: what each answering HAProxy task routes; ``etcd``: every
    member's health as the first answering member sees it; ``tasks``: running
    tasks per service (short name); ``health``: the status code of pretix's
    /healthcheck/ through nginx; ``took``: seconds the probes needed.
    """

    t: float
    haproxy: tuple[HaproxyView, ...] | None = None
    patroni: ClusterView | None = None
    sentinel: SentinelView | None = None
    etcd: tuple[EndpointHealth, ...] | None = None
    tasks: Mapping[str, int] | None = None
    health: int | None = None
    took: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The form written to NN-name.samples.json (the same as before the typed Sample)."""
        return {
            "t": self.t,
            "haproxy": None
            if self.haproxy is None
            else {v.task: v.to_json() for v in self.haproxy},
            "patroni": None if self.patroni is None else self.patroni.to_json(),
            "sentinel": None if self.sentinel is None else self.sentinel.to_json(),
            "etcd": None if self.etcd is None else [m.to_json() for m in self.etcd],
            "tasks": None if self.tasks is None else dict(self.tasks),
            "health": self.health,
            "took": self.took,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sample:
        views, members, sentinel = data.get("haproxy"), data.get("patroni"), data.get("sentinel")
        etcd = data.get("etcd")  # absent from samples recorded before it was sampled
        return cls(
            t=float(data["t"]),
            haproxy=None
            if views is None
            else tuple(HaproxyView.from_json(task, b) for task, b in views.items()),
            patroni=None if members is None else ClusterView.from_json(members),
            sentinel=None if sentinel is None else SentinelView.from_json(sentinel),
            etcd=None if etcd is None else tuple(EndpointHealth.from_json(m) for m in etcd),
            tasks=data.get("tasks"),
            health=data.get("health"),
            took=data.get("took"),
        )


def _haproxy(cluster: Cluster) -> tuple[HaproxyView, ...]:
    """What every HAProxy that answers routes, asked in parallel."""
    containers = swarm.running_containers(cluster.client, cluster.stack, "haproxy")
    if not containers:
        return ()
    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        views = pool.map(lambda c: status.haproxy_view(c, timeout=PROBE_TIMEOUT_S), containers)
    return tuple(v for v in views if v is not None)


def _patroni(cluster: Cluster, avoid: str | None) -> ClusterView | None:
    # A partitioned node still answers, from its own stale view: ask the others first.
    nodes = sorted(cluster.spec.pg_nodes, key=lambda n: n == avoid)
    return status.patroni_view(cluster, nodes, timeout=PROBE_TIMEOUT_S)


def _sentinel(cluster: Cluster) -> SentinelView | None:
    return status.sentinel_view(cluster, timeout=PROBE_TIMEOUT_S)


def _etcd(cluster: Cluster) -> tuple[EndpointHealth, ...] | None:
    return status.etcd_health(cluster, timeout=PROBE_TIMEOUT_S)


def _tasks(cluster: Cluster) -> dict[str, int]:
    return swarm.running_tasks(cluster.client, cluster.stack)


def _health(cluster: Cluster) -> int | None:
    return status.healthcheck(cluster, timeout=PROBE_TIMEOUT_S).status


def take_sample(cluster: Cluster, pool: ThreadPoolExecutor, avoid: str | None = None) -> Sample:
    """One observation of every layer, probes in parallel; a probe that fails gives None."""
    t = time.time()
    probes: dict[str, Callable[[], Any]] = {
        "haproxy": lambda: _haproxy(cluster),
        "patroni": lambda: _patroni(cluster, avoid),
        "sentinel": lambda: _sentinel(cluster),
        "etcd": lambda: _etcd(cluster),
        "tasks": lambda: _tasks(cluster),
        "health": lambda: _health(cluster),
    }
    futures = {k: pool.submit(f) for k, f in probes.items()}
    answers: dict[str, Any] = {}
    for key, future in futures.items():
        try:
            answers[key] = future.result(timeout=PROBE_TIMEOUT_S * 3)
        except Exception:  # a probe of a broken cluster: that is an observation too
            answers[key] = None
    return Sample(t=round(t, 3), took=round(time.time() - t, 3), **answers)


class Sampler(threading.Thread):
    """Samples the cluster every ``interval_s`` until stopped; ``samples`` grows live."""

    def __init__(self, cluster: Cluster, interval_s: float = 1.0, avoid: str | None = None):
        super().__init__(name="chaos-sampler", daemon=True)
        # Its own Docker client: the load test's thread uses the cluster's.
        self.cluster = dataclasses.replace(cluster)
        self.interval_s = interval_s
        self.avoid = avoid
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=6, thread_name_prefix="probe") as pool:
            while not self._halt.is_set():
                start = time.monotonic()
                self.samples.append(take_sample(self.cluster, pool, self.avoid))
                self._halt.wait(max(0.0, self.interval_s - (time.monotonic() - start)))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=PROBE_TIMEOUT_S * 4)


class HealthWatch(threading.Thread):
    """Runs the full ``status`` check again and again; records when it says healthy.

    ``status`` is the operator's verdict: "fully healthy" is its answer, not ours.
    Only answers to checks started after ``not_before`` count (a check started
    before the cluster even noticed the fault would say healthy too early).
    """

    def __init__(self, cluster: Cluster, pause_s: float = 2.0):
        super().__init__(name="chaos-health", daemon=True)
        self.cluster = dataclasses.replace(cluster)
        self.pause_s = pause_s
        self.checks: list[dict[str, Any]] = []
        self.not_before: float | None = None
        self.healthy_at: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set() and self.healthy_at is None:
            t = time.time()
            try:
                result = status.collect(self.cluster)
                healthy, problems = result.healthy, list(result.problems)
            except Exception as exc:  # Docker itself restarting
                healthy, problems = False, [f"status failed: {type(exc).__name__}"]
            self.checks.append({"t": round(t, 3), "healthy": healthy, "problems": problems[:5]})
            if healthy and self.not_before is not None and t >= self.not_before:
                self.healthy_at = t
                return
            self._halt.wait(self.pause_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)
