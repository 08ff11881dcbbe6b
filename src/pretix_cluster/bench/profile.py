"""`bench --profile`: where a purchase's CPU goes, by process, by view and by library.

While a bench run's load is on, in the heaviest phase below overload (steady
by then), py-spy samples every Python process of one web container and of one
worker container (gunicorn's workers, celery's pool; the baseline's single
pretix container holds both) for up to :data:`SECONDS`, in its collapsed-stack
format, without pausing them (``--nonblocking``), and only the thread holding
the GIL (``--gil``): a process waiting for PostgreSQL, Redis or a client has
released it, so the samples are Python on the CPU, not waits. PostgreSQL's
pg_stat_statements is reset when sampling starts and read when it ends, on
the primary (the baseline: its one server).

From those, per container: a flame graph (SVG), the share of samples per
pretix view or task (the first pretix view/task frame on the stack, so the
request type a sample belongs to) and per library (the innermost frame's
package: where the time is spent); and the statements by total time.

py-spy runs on this machine against the containers' processes (host PIDs);
on a multi-machine cluster only containers on this machine can be sampled.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docker.models.containers import Container

from pretix_cluster import swarm
from pretix_cluster.bench import locks
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.shapes import Phase, Plan
from pretix_cluster.reports import flamegraph

SECONDS = 40.0  # sampling time per run
RATE = 50  # py-spy samples per second per process
TOP = 12  # rows per table
STATEMENTS_EXTENSION = "pg_stat_statements"
# The frame that names a sample's request type: a pretix view (presale, control, API) or
# the service function a celery task runs (not the task wrapper, services/tasks.py).
_VIEW_FRAME = re.compile(
    r"^(?P<func>[^ <]+) \((?P<file>pretix/(?:[a-z_]+/)*views/[^:]+"
    r"|pretix/base/services/(?!tasks\.py)[^:]+):\d+\)$"
)
_HANDLERS = frozenset(
    ("get", "post", "put", "patch", "delete", "dispatch", "list", "create", "retrieve", "update")
)
_FRAME_FILE = re.compile(r"\((?P<file>[^:()]+):\d+\)$")


@dataclasses.dataclass(frozen=True)
class Stacks:
    """Collapsed stacks of one container: frames outermost first, sample count."""

    counts: dict[tuple[str, ...], int]

    @classmethod
    def from_collapsed(cls, text: str) -> Stacks:
        """py-spy's ``raw`` output; with ``--subprocesses`` each stack starts with the
        ``process PID:"command"`` frames of its process and that process's parents."""
        counts: Counter[tuple[str, ...]] = Counter()
        for line in text.splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                counts[tuple(stack.split(";"))] += int(count)
        return cls(dict(counts))

    def python(self) -> Stacks:
        """Only the samples with a Python frame: py-spy also records the process frames
        alone (the GIL holder was in native code, or the read raced the interpreter)."""
        return Stacks({k: v for k, v in self.counts.items() if not k[-1].startswith("process ")})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def shares(self, key: Callable[[tuple[str, ...]], str]) -> list[tuple[str, float]]:
        """Share of all samples per ``key(stack)``, largest first."""
        by: Counter[str] = Counter()
        for frames, count in self.counts.items():
            by[key(frames)] += count
        total = self.total or 1
        return [(k, round(v / total, 4)) for k, v in by.most_common()]


def view_of(frames: tuple[str, ...]) -> str:
    """The pretix view, API viewset or task a stack runs in, e.g. ``presale/views/cart.py:post``."""
    if any("importlib" in frame for frame in frames):
        return "(imports: a new worker process loading pretix)"
    matches = [m for m in map(_VIEW_FRAME.match, frames) if m]
    # A view's HTTP method (innermost: decorators wrap it) names it; a task its service.
    handlers = [m for m in matches if m["func"] in _HANDLERS] or matches
    if not handlers:
        return "(middleware, routing, server and task plumbing)"
    match = handlers[-1] if handlers is not matches else handlers[0]
    return f"{match['file'].removeprefix('pretix/')}:{match['func']}"


def library_of(frames: tuple[str, ...]) -> str:
    """The package of the innermost frame: ``django.template``, ``psycopg``, ``pretix``, ..."""
    match = _FRAME_FILE.search(frames[-1]) if frames else None
    if not match:
        return "(native or unknown)"
    parts = match["file"].split("/")
    if parts[0] in ("django", "pretix") and len(parts) > 2:
        return f"{parts[0]}.{parts[1]}"
    return parts[0].removesuffix(".py")


@dataclasses.dataclass(frozen=True)
class Statement:
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    query: str

    @classmethod
    def from_psql_line(cls, line: str) -> Statement:
        calls, total, mean, rows, query = line.split("\t", 4)
        return cls(int(calls), float(total), float(mean), int(rows), query)


@dataclasses.dataclass(frozen=True)
class ContainerProfile:
    name: str  # web | worker (the baseline: web holds gunicorn and celery)
    samples: int  # with a Python frame (the shares' base)
    native_samples: int  # without one (left out of the shares)
    by_view: tuple[tuple[str, float], ...]
    by_library: tuple[tuple[str, float], ...]
    flamegraph: str  # file name next to bench.json's run folder
    collapsed: str


@dataclasses.dataclass(frozen=True)
class Profile:
    phase: str
    seconds: float
    containers: tuple[ContainerProfile, ...] = ()
    statements: tuple[Statement, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def profiled_phase(plan: Plan) -> Phase:
    """The heaviest phase below overload (the last phase is the overload)."""
    phases = sorted(plan.phases, key=lambda p: p.multiplier)
    return phases[-2] if len(phases) > 1 else phases[0]


def py_spy() -> str | None:
    """py-spy from this tool's environment (a dependency), else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profiler:
    """Started by the load run when Locust launches; :meth:`result` waits for it."""

    def __init__(self, cluster: Cluster, out: Path):
        self.cluster, self.out = cluster, out
        self._thread: threading.Thread | None = None
        self._result: Profile | None = None

    def start(self, plan: Plan, t_launch: float) -> None:
        phase = profiled_phase(plan)
        start, end = phase.steady_window(plan.pace_s) or (phase.end_s, phase.end_s)
        begin = t_launch + start
        seconds = min(SECONDS, end - start - 2)
        self._thread = threading.Thread(
            target=self._run, args=(phase, begin, seconds), name="profiler", daemon=True
        )
        self._thread.start()

    def result(self) -> Profile | None:
        if self._thread is not None:
            self._thread.join(timeout=SECONDS + 120)
        return self._result

    def _run(self, phase: Phase, begin: float, seconds: float) -> None:
        notes: list[str] = []
        if seconds < 10:
            self._result = Profile(phase.name, 0, notes=(f"phase {phase.name} too short",))
            return
        time.sleep(max(0.0, begin - time.time()))
        database = self._database(notes)
        if database is not None:
            notes += _statements_reset(database)
        sampled = self._sample(seconds, notes)
        statements = _statements_read(database, notes) if database is not None else ()
        self._result = Profile(
            phase=phase.name,
            seconds=round(seconds, 1),
            containers=tuple(sampled),
            statements=statements,
            notes=tuple(notes),
        )

    def _targets(self) -> dict[str, Container]:
        found = {}
        for name in ("web", "worker"):
            containers = swarm.running_containers(self.cluster.client, self.cluster.stack, name)
            local = [c for c in containers if c.attrs.get("State", {}).get("Pid")]
            if local:
                found[name] = sorted(local, key=lambda c: c.name)[0]
        return found

    def _sample(self, seconds: float, notes: list[str]) -> list[ContainerProfile]:
        binary = py_spy()
        if binary is None:
            notes.append("py-spy not found: install this tool's dependencies again")
            return []
        running = {}
        for name, container in self._targets().items():
            collapsed = self.out / f"profile-{name}.txt"
            command = [
                binary, "record", "--pid", str(container.attrs["State"]["Pid"]),
                "--subprocesses", "--nonblocking", "--gil", "--rate", str(RATE),
                "--duration", str(int(seconds)), "--format", "raw", "--output", str(collapsed),
            ]  # fmt: skip
            running[name] = (
                collapsed,
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE),
            )
        profiles = []
        for name, (collapsed, proc) in running.items():
            try:
                _, err = proc.communicate(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if not collapsed.exists():
                notes.append(f"py-spy on {name}: {err.decode(errors='replace').strip()[-200:]}")
                continue
            profiles.append(self._container_profile(name, collapsed))
        return profiles

    def _container_profile(self, name: str, collapsed: Path) -> ContainerProfile:
        recorded = Stacks.from_collapsed(collapsed.read_text())
        stacks = recorded.python()
        svg = self.out / f"profile-{name}.svg"
        title = f"{self.cluster.stack} {name}: Python stacks holding the GIL"
        svg.write_text(flamegraph.svg(flamegraph.layout(title, stacks.counts)))
        return ContainerProfile(
            name=name,
            samples=stacks.total,
            native_samples=recorded.total - stacks.total,
            by_view=tuple(stacks.shares(view_of)[:TOP]),
            by_library=tuple(stacks.shares(library_of)[:TOP]),
            flamegraph=svg.name,
            collapsed=collapsed.name,
        )

    def _database(self, notes: list[str]) -> Container | None:
        """The container of the primary (the baseline: its one PostgreSQL)."""
        if self.cluster.topology.uses_patroni:
            try:
                return locks.primary_container(self.cluster)
            except UserError as e:
                notes.append(f"no statement statistics: {e}")
                return None
        containers = swarm.running_containers(self.cluster.client, self.cluster.stack, "pg")
        if not containers:
            notes.append("no running PostgreSQL: no statement statistics")
            return None
        return containers[0]


def _statements_reset(container: Container) -> list[str]:
    code, output = locks.psql(
        container,
        f"CREATE EXTENSION IF NOT EXISTS {STATEMENTS_EXTENSION}; "
        "SELECT pg_stat_statements_reset();",
    )
    return [] if code == 0 else [f"pg_stat_statements: {output.strip()[-200:]}"]


def _statements_read(container: Container, notes: list[str]) -> tuple[Statement, ...]:
    # pretix tags each statement with a comment naming its URL or task and task id, so one
    # statement appears once per task: grouped here without the comment.
    code, output = locks.psql(
        container,
        "SELECT sum(calls), round(sum(total_exec_time)::numeric, 1), "
        "round((sum(total_exec_time) / sum(calls))::numeric, 3), sum(rows), "
        "left(regexp_replace(regexp_replace(query, '/\\*.*?\\*/', '', 'g'), '\\s+', ' ', 'g'), 200)"
        " AS statement FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        f"GROUP BY statement ORDER BY 2 DESC LIMIT {TOP * 2}",
    )
    if code != 0:
        notes.append(f"pg_stat_statements: {output.strip()[-200:]}")
        return ()
    return tuple(Statement.from_psql_line(line) for line in output.splitlines() if line)
