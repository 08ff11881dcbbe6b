"""Load shapes: a target in purchases per minute, turned into concurrent buyers over time.

The model (an open-ish workload in a closed loop). A Locust user is a *buyer
slot*: it runs one purchase (a new buyer, see :mod:`flows`) and then waits so
that it starts a purchase every ``pace`` seconds (constant pacing, as Locust's
``constant_pacing``). With ``D`` the purchase duration measured before the run (calibration) and a
think time ``T``::

    pace = D + T                    (T defaults to D/2: headroom for a slower cluster)
    buyers(R) = ceil(R * pace / 60) (Little's law, R in purchases/min)

Each slot then offers R/buyers purchases per minute (a slot's pace is stretched
to ``buyers * 60 / R`` when rounding up the buyers would offer more than R).
While the cluster keeps a purchase under ``pace`` the offered rate is exactly
the target; when purchases take longer, slots fall behind and the achieved rate
drops below the target: the report shows target vs achieved per phase, which is the point of the
exercise. Raising ``T`` offers the same rate with more concurrent buyers.

Shapes (all times relative to the start of the test):

- ``steady``: ramp to 1x over ``ramp`` seconds, hold until the end.
- ``phases``: phases at multiples of the target (default 0.5x, 1x, 2x, 10x),
  each with its own ramp and steady part; the last (10x) phase lasts twice as
  long as each of the others (``LAST_PHASE_WEIGHT``).
- ``peak``: the end of a sale: 0.25x for 40 % of the time, a linear rush to
  1x over 30 %, and 1x for the last 30 % (the sale closes at the end).

Steady-state windows (for "sustained purchases/min") start one ``pace`` after
a phase's ramp ends at the earliest, so that every slot has completed a cycle;
the report moves the start further when the phase's purchases took longer
(:func:`~pretix_cluster.loadtest.report.phase_figures`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

ShapeName = Literal["steady", "phases", "peak"]
SHAPES: tuple[str, ...] = ("steady", "phases", "peak")
DEFAULT_MULTIPLIERS: tuple[float, ...] = (0.5, 1.0, 2.0, 10.0)
# The last (heaviest) phase's share of the run against each other phase's: at overload a
# purchase takes longest, and its steady window opens only one purchase time after the ramp.
LAST_PHASE_WEIGHT = 2.0


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    multiplier: float
    rate_per_min: float  # offered purchases/min once ramped (after the max_users cap)
    users: int
    start_s: float
    ramp_s: float
    end_s: float
    steady: bool = True  # False: a ramp across the whole phase (no steady window)
    capped: bool = False  # max_users kept the offered rate below multiplier x target

    def steady_window(self, pace_s: float, settle_s: float = 0.0) -> tuple[float, float] | None:
        """Where the phase is in a steady state: from one cycle after its ramp to its end.

        ``settle_s``: how long the phase's purchases took (their p95); the window opens
        no earlier than that after the ramp, and must last at least as long, or the
        phase was too short for the purchase time it caused (None).
        """
        if not self.steady:
            return None
        cycle = max(pace_s, settle_s)
        start = self.start_s + self.ramp_s + cycle
        return (start, self.end_s) if self.end_s - start >= max(10.0, cycle) else None


@dataclasses.dataclass(frozen=True)
class Plan:
    shape: str
    target_per_min: float
    pace_s: float
    duration_s: float
    max_users: int
    phases: tuple[Phase, ...]

    def tick(self, t: float) -> tuple[int, float] | None:
        """(users, spawn rate per second) at ``t`` seconds, None once the plan is over."""
        if t >= self.duration_s:
            return None
        previous = 0
        for phase in self.phases:
            if t < phase.end_s:
                change = abs(phase.users - previous)
                rate = change / phase.ramp_s if phase.ramp_s > 0 else float(max(change, 1))
                return phase.users, max(rate, 0.1)
            previous = phase.users
        return None

    def phase_at(self, t: float) -> Phase:
        return next((p for p in self.phases if t < p.end_s), self.phases[-1])

    def pace_at(self, t: float) -> float:
        """Seconds between purchase starts of one slot at ``t``: ``pace_s``, stretched when
        rounding buyers up would offer more than the phase's rate (few buyers, low rates)."""
        phase = self.phase_at(t)
        if phase.rate_per_min <= 0:
            return self.pace_s
        return max(self.pace_s, phase.users * 60 / phase.rate_per_min)

    @property
    def peak_users(self) -> int:
        return max(p.users for p in self.phases)

    def expected_purchases(self) -> float:
        """Offered purchases over the whole plan (ramps count half)."""
        total = 0.0
        previous_rate = 0.0
        for p in self.phases:
            total += (previous_rate + p.rate_per_min) / 2 * p.ramp_s / 60
            total += p.rate_per_min * (p.end_s - p.start_s - p.ramp_s) / 60
            previous_rate = p.rate_per_min
        return total

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        data = dict(data)
        data["phases"] = tuple(Phase(**p) for p in data["phases"])
        return cls(**data)


def buyers_for(rate_per_min: float, pace_s: float) -> int:
    """Concurrent buyer slots that offer ``rate_per_min`` when each starts one purchase per pace."""
    return max(1, math.ceil(rate_per_min * pace_s / 60 - 1e-9))


def pace_for(purchase_s: float, think_s: float | None = None) -> float:
    """Seconds between two purchase starts of one slot (see the module doc)."""
    return purchase_s + (purchase_s / 2 if think_s is None else think_s)


def _phase(
    name: str,
    mult: float,
    target: float,
    pace: float,
    start: float,
    ramp: float,
    end: float,
    max_users: int,
    *,
    steady: bool = True,
) -> Phase:
    wanted = buyers_for(mult * target, pace)
    users = min(wanted, max_users)
    rate = mult * target if users == wanted else users * 60 / pace
    return Phase(
        name=name,
        multiplier=mult,
        rate_per_min=round(rate, 2),
        users=users,
        start_s=round(start, 2),
        ramp_s=round(ramp, 2),
        end_s=round(end, 2),
        steady=steady,
        capped=users < wanted,
    )


def make_plan(
    shape: str,
    *,
    target_per_min: float,
    duration_s: float,
    pace_s: float,
    max_users: int,
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS,
    weights: tuple[float, ...] | None = None,
    ramp_s: float | None = None,
) -> Plan:
    """The plan for ``shape``; ``ramp_s`` defaults to a fifth of a phase, at most 30 s.

    ``weights``: each phase's share of the run (``phases`` shape), one per multiplier;
    by default equal, the last one ``LAST_PHASE_WEIGHT`` times the others.
    """
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r} (one of {', '.join(SHAPES)})")
    if target_per_min <= 0 or duration_s <= 0 or pace_s <= 0 or max_users < 1:
        raise ValueError("target, duration, pace and max_users must be positive")
    args = (target_per_min, pace_s)
    phases: list[Phase] = []
    if shape == "steady":
        ramp = min(30.0, duration_s / 5) if ramp_s is None else ramp_s
        phases.append(_phase("1x", 1.0, *args, 0.0, ramp, duration_s, max_users))
    elif shape == "phases":
        if weights is None:
            weights = (1.0,) * (len(multipliers) - 1) + (LAST_PHASE_WEIGHT,)
        if len(weights) != len(multipliers) or min(weights) <= 0:
            raise ValueError("one positive weight per multiplier")
        start = 0.0
        for m, w in zip(multipliers, weights, strict=True):
            length = duration_s * w / sum(weights)
            ramp = min(30.0, length / 5) if ramp_s is None else ramp_s
            phases.append(_phase(f"{m:g}x", m, *args, start, ramp, start + length, max_users))
            start += length
    else:  # peak
        base_end, rush_end = duration_s * 0.4, duration_s * 0.7
        ramp = min(30.0, base_end / 4) if ramp_s is None else ramp_s
        phases.append(_phase("base 0.25x", 0.25, *args, 0.0, ramp, base_end, max_users))
        phases.append(
            _phase(
                "rush", 1.0, *args, base_end, rush_end - base_end, rush_end, max_users, steady=False
            )
        )
        phases.append(_phase("peak 1x", 1.0, *args, rush_end, 0.0, duration_s, max_users))
    return Plan(
        shape=shape,
        target_per_min=target_per_min,
        pace_s=round(pace_s, 3),
        duration_s=float(duration_s),
        max_users=max_users,
        phases=tuple(phases),
    )


def describe(plan: Plan) -> list[str]:
    """One line per phase, for the console and the report."""
    lines = []
    for p in plan.phases:
        cap = " (capped by max users)" if p.capped else ""
        kind = "ramp" if not p.steady else f"ramp {p.ramp_s:g}s"
        lines.append(
            f"{p.name:>11}: {p.start_s:6.0f}-{p.end_s:<6.0f}s {kind:>10}, {p.users:4d} buyers, "
            f"{p.rate_per_min:7.1f} purchases/min offered{cap}"
        )
    return lines
