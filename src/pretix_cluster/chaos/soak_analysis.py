"""The figures of a soak, from what it recorded: pure functions, no I/O.

A soak is one steady load with faults one after the other. Each fault is read
exactly as a scenario is (:func:`analysis.timeline` for detection, repair and
rejoin; :func:`analysis.write_window` for the buyers' side), on its own span:
from its injection to the next one (the last: to the end of the run), so that
the next fault's effects are never taken for this one's. The ledger is
reconciled once, at the end, by the load test; its phantom orders are placed
in the fault whose span their purchase ended in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pretix_cluster.chaos import analysis
from pretix_cluster.chaos.analysis import Watch
from pretix_cluster.chaos.observe import Sample
from pretix_cluster.loadtest.summary import Accounting


@dataclass(frozen=True)
class InjectedFault:
    """What the loop did for one fault, as it happened (the input of the analysis).

    ``healed_at``: when an undoable fault was undone (None: nothing to undo);
    ``healthy_at``: the first ``status`` check, started after detection (and the
    heal), that found no problem; ``error``: why the loop gave up on it.
    """

    number: int
    scenario: int
    name: str
    title: str
    target: str  # the target's name in the cluster (Patroni member, Redis node, service)
    role: str
    container: str | None
    machine: str | None
    fault: str  # Fault.describe()
    watch: Watch
    fault_at: float
    repeated_target: bool = False  # no scenario of the pool offered another target
    healed_at: float | None = None
    healthy_at: float | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InjectedFault:
        return cls(**(data | {"watch": Watch(**data["watch"])}))


@dataclass(frozen=True)
class FaultFigures:
    """One fault's row: times are seconds after its injection."""

    number: int
    scenario: int
    name: str
    target: str
    role: str
    fault: str
    started_at: float
    started_s: float  # after the load started
    detect_s: float | None
    first_signal: str | None
    repair_s: float | None
    rejoin_s: float | None
    window_s: float | None
    healthy_s: float | None
    failed_purchases: int  # failed between this fault and the next
    failed_in_window: int
    phantom: int  # orders placed although their buyer saw an error, in this fault's span
    no_visible_effect: bool
    repeated_target: bool
    recovered: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Totals:
    """The whole run's accounting (one reconciliation of the ledger against the database)."""

    checked: bool
    completed: int = 0
    failed: int = 0
    lost: int = 0
    not_live: int = 0
    oversold: int = 0
    duplicated: int = 0
    phantom: int = 0
    phantom_unknown: int = 0
    orders_in_db: int = 0
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class EndStatus:
    healthy: bool
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SoakResult:
    meta: dict[str, Any]
    faults: tuple[FaultFigures, ...]
    totals: Totals
    status: EndStatus
    verdict: Verdict
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def spans(faults: Sequence[InjectedFault], end: float) -> list[tuple[float, float]]:
    """Each fault's span: its injection to the next one's, the last one's to ``end``."""
    starts = [f.fault_at for f in faults]
    if not starts:
        return []
    return [(lo, max(lo, hi)) for lo, hi in zip(starts, [*starts[1:], end], strict=True)]


def fault_figures(
    fault: InjectedFault,
    span: tuple[float, float],
    samples: Sequence[Sample],
    records: Sequence[dict[str, Any]],
    phantom_attempts: set[str],
    load_started_at: float,
) -> FaultFigures:
    lo, hi = span
    seen = analysis.timeline([s for s in samples if s.t < hi], fault.watch, lo)
    in_span = [r for r in records if "t1" in r and r["t1"] < hi]
    window = analysis.write_window(in_span, lo)
    phantom = sum(
        1 for r in records if r.get("attempt") in phantom_attempts and lo <= r.get("t1", 0) < hi
    )
    reasons = fault_reasons(fault, seen)
    return FaultFigures(
        number=fault.number,
        scenario=fault.scenario,
        name=fault.name,
        target=fault.target,
        role=fault.role,
        fault=fault.fault,
        started_at=fault.fault_at,
        started_s=round(fault.fault_at - load_started_at, 1),
        detect_s=seen.detect_s,
        first_signal=seen.first_signal,
        repair_s=seen.repair_s,
        rejoin_s=seen.rejoin_s,
        window_s=window["window_s"],
        healthy_s=None if fault.healthy_at is None else round(fault.healthy_at - lo, 2),
        failed_purchases=window["failed_after_fault"],
        failed_in_window=window["failed_in_window"],
        phantom=phantom,
        no_visible_effect=seen.no_visible_effect,
        repeated_target=fault.repeated_target,
        recovered=not reasons,
        reasons=tuple(reasons),
    )


def fault_reasons(fault: InjectedFault, seen: analysis.Timeline) -> list[str]:
    """Why a fault does not count as recovered (empty: it does), as a scenario is judged."""
    reasons = [fault.error] if fault.error else []
    if seen.no_visible_effect:
        return [*reasons, analysis.NO_VISIBLE_EFFECT]
    if seen.detected_at is None:
        reasons.append("the cluster never showed it noticed the fault")
    if seen.rejoined_at is None and seen.rejoin_seen_failing:
        reasons.append("the failed node did not rejoin")
    if fault.healthy_at is None:
        reasons.append("status did not become healthy")
    return reasons


def totals(accounting: Accounting | None, records: Sequence[dict[str, Any]]) -> Totals:
    integrity = analysis.integrity(accounting)
    failed = sum(
        1 for r in records if r.get("phase") != "calibration" and r.get("outcome") == "failed"
    )
    if not integrity["checked"]:
        return Totals(checked=False, failed=failed, problems=tuple(integrity["problems"]))
    return Totals(
        checked=True,
        completed=integrity["completed_by_buyers"],
        failed=failed,
        lost=integrity["lost"],
        not_live=integrity["not_live"],
        oversold=integrity["oversold"],
        duplicated=integrity["duplicated"],
        phantom=integrity["phantom_unacknowledged"] + integrity["phantom_unknown"],
        phantom_unknown=integrity["phantom_unknown"],
        orders_in_db=integrity["orders_in_db"],
    )


def verdict(
    faults: Sequence[FaultFigures], total: Totals, status: EndStatus, error: str | None
) -> Verdict:
    """Pass only when faults were injected and each recovered, nothing was lost, oversold
    or duplicated, purchases completed, and ``status`` is healthy at the end."""
    reasons = [error] if error else []
    if not faults:
        reasons.append("no fault was injected")
    reasons += [f"fault {f.number} ({f.name}): {r}" for f in faults for r in f.reasons]
    if not total.checked:
        reasons.append("accounting did not run: " + "; ".join(total.problems))
    else:
        for count, label in (
            (total.lost, "lost"),
            (total.not_live, "confirmed but canceled/expired"),
            (total.oversold, "oversold"),
            (total.duplicated, "duplicated"),
        ):
            if count:
                reasons.append(f"{count} {label}")
        if not total.completed:
            reasons.append("no purchase completed")
    if not status.healthy:
        reasons.append("status at the end: " + "; ".join(status.problems[:3]))
    return Verdict(passed=not reasons, reasons=tuple(reasons))


def analyse(
    meta: dict[str, Any],
    injected: Sequence[InjectedFault],
    samples: Sequence[Sample],
    records: Sequence[dict[str, Any]],
    accounting: Accounting | None,
    status: EndStatus,
    load_started_at: float,
    end: float,
    error: str | None = None,
) -> SoakResult:
    """The soak's figures: each fault on its span, the totals, the verdict."""
    phantom_attempts = {
        p.attempt for p in (accounting.phantom_unacknowledged if accounting else ()) if p.attempt
    }
    figures = tuple(
        fault_figures(f, span, samples, records, phantom_attempts, load_started_at)
        for f, span in zip(injected, spans(injected, end), strict=True)
    )
    total = totals(accounting, records)
    return SoakResult(
        meta=meta,
        faults=figures,
        totals=total,
        status=status,
        verdict=verdict(figures, total, status, error),
        error=error,
    )
