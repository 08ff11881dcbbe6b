"""What the cluster itself sees, sampled about once a second while a scenario runs.

Detection, repair and rejoin times are read off these samples afterwards
(:mod:`analysis`), never guessed: HAProxy's server states (its stats socket),
Patroni's members and leader (/cluster), Sentinel's master and replicas, the
Swarm tasks running per service, and pretix's /healthcheck/ through nginx.
The probes are :mod:`pretix_cluster.status`'s own, asked in parallel with
short timeouts so that one hung component does not blind the others.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pretix_cluster import status, swarm
from pretix_cluster.cluster import Cluster

PROBE_TIMEOUT_S = 4.0
Sample = dict[str, Any]


def _haproxy(cluster: Cluster) -> dict[str, dict[str, dict[str, str]]]:
    """{haproxy task: {backend: {server: status}}} for every HAProxy that answers."""
    views: dict[str, dict[str, dict[str, str]]] = {}
    containers = swarm.running_containers(cluster.client, cluster.stack, "haproxy")
    if not containers:
        return views
    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        answers = pool.map(lambda c: status.haproxy_servers(c, timeout=PROBE_TIMEOUT_S), containers)
    for container, servers in zip(containers, answers, strict=True):
        if servers is None:
            continue
        view = views.setdefault(status.task_label(container), {})
        for row in servers:
            view.setdefault(row["pxname"], {})[row["svname"]] = row["status"]
    return views


def _patroni(cluster: Cluster, avoid: str | None) -> list[dict] | None:
    # A partitioned node still answers, from its own stale view: ask the others first.
    nodes = sorted(cluster.spec.pg_nodes, key=lambda n: n == avoid)
    return status.patroni_members(cluster, nodes, timeout=PROBE_TIMEOUT_S)


def _sentinel(cluster: Cluster) -> dict[str, Any] | None:
    view = status.sentinel_view(cluster, timeout=PROBE_TIMEOUT_S)
    if view is None:
        return None
    master, replicas = view
    return {
        "master": master.get("ip"),
        "flags": master.get("flags"),
        "replicas": {
            r.get("ip"): {"flags": r.get("flags"), "link": r.get("master-link-status")}
            for r in replicas
        },
    }


def _tasks(cluster: Cluster) -> dict[str, int]:
    """Running tasks per service (short name): two API calls for the whole stack."""
    prefix = cluster.stack + "_"
    names = {s.id: s.name for s in swarm.stack_services(cluster.client, cluster.stack)}
    counts = {name.removeprefix(prefix): 0 for name in names.values()}
    for task in cluster.client.api.tasks(filters={"desired-state": "running"}):
        name = names.get(task.get("ServiceID"))
        if name and task["Status"]["State"] == "running":
            counts[name.removeprefix(prefix)] += 1
    return counts


def _health(cluster: Cluster) -> int | None:
    return status.healthcheck(cluster, timeout=PROBE_TIMEOUT_S).get("status")


def take_sample(cluster: Cluster, pool: ThreadPoolExecutor, avoid: str | None = None) -> Sample:
    """One observation of every layer, probes in parallel; a probe that fails gives None."""
    t = time.time()
    probes = {
        "haproxy": lambda: _haproxy(cluster),
        "patroni": lambda: _patroni(cluster, avoid),
        "sentinel": lambda: _sentinel(cluster),
        "tasks": lambda: _tasks(cluster),
        "health": lambda: _health(cluster),
    }
    futures = {k: pool.submit(f) for k, f in probes.items()}
    sample: Sample = {"t": round(t, 3)}
    for key, future in futures.items():
        try:
            sample[key] = future.result(timeout=PROBE_TIMEOUT_S * 3)
        except Exception:  # a probe of a broken cluster: that is an observation too
            sample[key] = None
    sample["took"] = round(time.time() - t, 3)
    return sample


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
        with ThreadPoolExecutor(max_workers=5, thread_name_prefix="probe") as pool:
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
                healthy, problems = result.healthy, result.problems
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
