"""CPU seconds: the load generator's own, the cluster's per container, and the host's.

The generator runs on the same 2 cores as the cluster, so its CPU must be
measured and kept apart. Locust runs as a child process of the orchestrator:

- live: the process tree's ``utime+stime`` (plus reaped children) from
  ``/proc/<pid>/stat`` (no psutil in the orchestrator);
- final: ``resource.getrusage(RUSAGE_CHILDREN)`` after the child was waited
  for, which includes forked Locust workers the master reaped.

The cluster's CPU comes from each container's cgroup CPU counter, the one
``docker stats`` reads: straight from the cgroup file when this machine runs
the containers (cgroup v1 ``cpuacct.usage``, v2 ``cpu.stat usage_usec``; a
file read instead of the daemon's one-second stats round trip), else through
the Docker SDK (``container.stats(stream=False)``,
``cpu_stats.cpu_usage.total_usage``), sampled before, during and after the
run. A container that appears during the run counts from zero; one that
disappears keeps its last sample. Containers are grouped by service (``web``,
``pg-1``...) and by component (``pg-1`` -> ``pg``).
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pretix_cluster import swarm

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime+cutime+cstime of one process (its reaped children included)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    return sum(proc_cpu_seconds(p) for p in process_tree(pid))


def children_rusage_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_rusage_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def host_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole host since boot, from /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(x) / CLK_TCK for x in parts[:8]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return total - idle, total


_CGROUP_FILES = (
    "/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage",  # v1, cgroupfs driver (ns)
    "/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage",
    "/sys/fs/cgroup/cpuacct/system.slice/docker-{id}.scope/cpuacct.usage",  # v1, systemd
    "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat",  # v2, systemd (usage_usec)
    "/sys/fs/cgroup/docker/{id}/cpu.stat",  # v2, cgroupfs
)


def cgroup_cpu_seconds(container_id: str) -> float | None:
    """The container's cgroup CPU counter in seconds, or None when not readable here."""
    for pattern in _CGROUP_FILES:
        try:
            text = Path(pattern.format(id=container_id)).read_text()
        except OSError:
            continue
        if pattern.endswith("cpu.stat"):
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            continue
        return int(text.strip()) / 1e9
    return None


def component_of(service: str) -> str:
    """``pg-2`` -> ``pg``, ``web`` -> ``web``: replicas of one role add up."""
    return re.sub(r"-\d+$", "", service)


class ClusterCpu:
    """Cumulative CPU per container of one stack, sampled through the Docker SDK."""

    def __init__(self, client: Any, stack: str):
        self.client, self.stack = client, stack
        self.baseline: dict[str, float] = {}  # container id -> seconds at first sight
        self.last: dict[str, float] = {}
        self.service: dict[str, str] = {}
        self.started = False
        self.samples: list[tuple[float, dict[str, float]]] = []  # (time, component -> seconds)

    def _read_one(self, container: Any) -> tuple[str, str, float] | None:
        usage = cgroup_cpu_seconds(container.id)
        if usage is None:
            try:
                stats = container.stats(stream=False, one_shot=True)
                usage = stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
            except Exception:
                return None
        labels = container.attrs.get("Labels") or {}
        name = labels.get("com.docker.swarm.service.name", container.id[:12])
        return container.id, name.removeprefix(f"{self.stack}_"), usage

    def sample(self) -> None:
        try:
            containers = swarm.stack_containers(self.client, self.stack)
        except Exception:
            return
        if not containers:
            return
        with ThreadPoolExecutor(max_workers=len(containers)) as pool:
            results = [r for r in pool.map(self._read_one, containers) if r]
        for cid, service, usage in results:
            if cid not in self.baseline:
                self.baseline[cid] = usage if not self.started else 0.0
            self.last[cid] = usage
            self.service[cid] = service
        self.started = True
        self.samples.append((time.time(), self.by_component()))

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for cid, usage in self.last.items():
            out[self.service[cid]] += max(0.0, usage - self.baseline[cid])
        return dict(sorted(out.items()))

    def by_component(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for service, seconds in self.by_service().items():
            out[component_of(service)] += seconds
        return dict(sorted(out.items()))

    def containers(self) -> int:
        return len(self.last)
