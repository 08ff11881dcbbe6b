"""`bench --cores 0.5,1,1.5,2`: the capacity model's prediction against the cluster on fewer cores.

The limit is the CPU bandwidth of Docker's parent cgroup on this machine
(cgroup v1 ``cpu/docker/cpu.cfs_quota_us``, v2 ``docker/cpu.max``, the
cgroupfs driver): every container of the stack shares N cores, while the load
generator and the Docker daemon run outside it. It is restored afterwards,
also after a failure. On a multi-machine cluster it limits only this machine.

The model is calibrated on the first (largest) point: the cluster's CPU-s per
completed purchase net of its idle work (``c``) and its idle cores (``i``, the
health checks, heartbeats and replication of a cluster without load), so that
on ``N`` cores it sustains::

    predicted(N) = 60 * (min(N, available) - i) / c     purchases/min

where ``available`` is what the stack could use at the calibration point (the
host's cores less the generator's and everything else's). Each point is one
``steady`` run with :data:`BUYERS_PER_CORE` buyers per core, so that the stack is
saturated whatever its speed; the measured figure is what it completed in the
run's steady window, which opens once a purchase takes as long as it then takes.
Why so: session 7 ran four short phases per point: at 0.5 cores a purchase took
longer than a phase, no phase above 0.5x reached a steady window, and the point
read 5 purchases/min (the rate offered at 0.5x) against 19 predicted. A steady
run offered 1.25x the prediction (session 10) did not saturate either: the
buyers come from the idle purchase time, and 3 buyers at 1.5 cores completed
what 3 buyers can (67/min at a 2.4-s median purchase), not what 1.5 cores can.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.runner import LoadOptions, run_loadtest
from pretix_cluster.loadtest.summary import LoadSummary

PERIOD_US = 100_000
_V1 = Path("/sys/fs/cgroup/cpu/docker/cpu.cfs_quota_us")
_V2 = Path("/sys/fs/cgroup/docker/cpu.max")
WITHIN = 0.2  # the model holds when every point is within 20 % of its prediction
# Concurrent buyers per core: the shop's best phase on 2 cores had 11 (2x); 53 (10x)
# sold ~13 % less, as a machine overloaded with requests does.
BUYERS_PER_CORE = 6


@dataclasses.dataclass(frozen=True)
class Model:
    cpu_s_per_purchase: float  # net of idle work
    idle_cores: float
    available_cores: float  # what the stack could use at the calibration point

    def predict(self, cores: float) -> float:
        usable = min(cores, self.available_cores) - self.idle_cores
        return round(max(0.0, 60 * usable / self.cpu_s_per_purchase), 1)

    @classmethod
    def from_summary(cls, summary: LoadSummary, host_cores: int) -> Model:
        cpu = summary.cpu
        idle = sum(c.idle_cores or 0.0 for c in cpu.cluster_by_component.values())
        net = sum(
            c.cpu_s_per_purchase_net_of_idle
            if c.cpu_s_per_purchase_net_of_idle is not None
            else (c.cpu_s_per_purchase or 0.0)
            for c in cpu.cluster_by_component.values()
        )
        seconds = summary.throughput.test_seconds or 1.0
        others = (cpu.host_other_cpu_s or 0.0) / seconds + (cpu.generator_cores_avg or 0.0)
        return cls(round(net, 4), round(idle, 3), round(host_cores - others, 3))


@dataclasses.dataclass(frozen=True)
class Point:
    cores: float
    predicted_per_min: float | None
    measured_per_min: float | None
    phase: str | None
    p95_s: float | None
    out: str

    @property
    def error(self) -> float | None:
        if not self.predicted_per_min or self.measured_per_min is None:
            return None
        return round(self.measured_per_min / self.predicted_per_min - 1, 3)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"error": self.error}


def _limit_file() -> Path:
    for path in (_V1, _V2):
        if path.exists() and os.access(path, os.W_OK):
            return path
    raise UserError(
        "--cores needs Docker's cgroup on this machine to be writable "
        f"({_V1} or {_V2}: root, the cgroupfs driver); run the bench without --cores."
    )


@contextlib.contextmanager
def limited(cores: float) -> Iterator[None]:
    """Every container on this machine shares ``cores`` CPUs until the block ends."""
    path = _limit_file()
    quota = int(cores * PERIOD_US)
    unlimited = "-1" if path == _V1 else f"max {PERIOD_US}"
    path.write_text(str(quota) if path == _V1 else f"{quota} {PERIOD_US}")
    try:
        yield
    finally:
        path.write_text(unlimited)


def run_sweep(
    cluster: Cluster, cores: list[float], duration: float, out: Path, console: Console
) -> dict[str, Any]:
    """One saturating steady run per core count, largest first (it calibrates the model)."""
    host_cores = os.cpu_count() or 1
    points: list[Point] = []
    model: Model | None = None
    for n in sorted(cores, reverse=True):
        predicted = model.predict(n) if model else None
        console.print(f"[bold]cores {n:g}[/]: predicted {predicted or '-'} purchases/min")
        with limited(n):
            result = run_loadtest(
                cluster,
                LoadOptions(
                    scenario="shop",
                    shape="steady",
                    users=max(2, math.ceil(BUYERS_PER_CORE * n)),
                    duration=duration,
                    out=out / f"cores-{n:g}",
                ),
                console,
            )
        sustained = result.summary.throughput.sustained
        if model is None:
            model = Model.from_summary(result.summary, host_cores)
            predicted = model.predict(n)
        points.append(
            Point(
                cores=n,
                predicted_per_min=predicted,
                measured_per_min=sustained.completed_per_min if sustained else None,
                phase=sustained.phase if sustained else None,
                p95_s=sustained.p95_purchase_s if sustained else None,
                out=str(result.out),
            )
        )
    errors = [abs(p.error) for p in points[1:] if p.error is not None]
    return {
        "model": dataclasses.asdict(model) if model else None,
        "points": [p.to_dict() for p in sorted(points, key=lambda p: p.cores)],
        "within": WITHIN,
        "holds": bool(errors) and max(errors) <= WITHIN,
        "linearity": _linearity(points),
    }


def _linearity(points: list[Point]) -> float | None:
    """Measured purchases/min per core at the fewest cores against the most (1.0: linear)."""
    measured = [p for p in points if p.measured_per_min]
    if len(measured) < 2:
        return None
    small, large = min(measured, key=lambda p: p.cores), max(measured, key=lambda p: p.cores)
    per_core = [p.measured_per_min / p.cores for p in (small, large)]  # type: ignore[operator]
    return round(per_core[0] / per_core[1], 2) if per_core[1] else None


def parse_cores(text: str) -> list[float]:
    """``0.5,1,1.5,2`` -> [0.5, 1.0, 1.5, 2.0]; each between 0.1 and the host's cores."""
    host = os.cpu_count() or 1
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or any(not 0.1 <= v <= host for v in values):  # NaN fails the range too
        raise UserError(f"--cores takes core counts between 0.1 and {host}, e.g. 0.5,1,1.5,2.")
    return values
