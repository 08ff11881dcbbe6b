"""The result of one load run as typed data: what bench, chaos and the reports read.

:func:`pretix_cluster.loadtest.report.build_summary` computes a
:class:`LoadSummary` from the ledger; ``to_dict()`` is ``summary.json`` and
``from_dict()`` reads it back (bench re-reads results
folders), so the JSON keeps the field names below.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pretix_cluster.loadtest.accounting import summary_lines
from pretix_cluster.loadtest.shapes import Plan

FAILURE_BUDGET = 0.01  # "without a relevant number of failed purchases": at most 1 %
PLAN_MODEL = "buyers = ceil(rate/min * pace / 60), pace = D + think"


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``data`` that are fields of ``cls`` (a newer or older file may carry more)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


# --------------------------------------------------------------------------- the accounting


@dataclasses.dataclass(frozen=True)
class PhantomOrder:
    """An order in the database whose buyer saw an error or was cut off (not a loss)."""

    code: str
    attempt: str | None = None
    kind: str | None = None
    step: str | None = None
    retry_kinds: dict[str, int] = dataclasses.field(default_factory=dict)
    message: str = ""


@dataclasses.dataclass(frozen=True)
class Duplicates:
    attempts_with_several_orders: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    codes_claimed_twice: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.attempts_with_several_orders) + len(self.codes_claimed_twice)


@dataclasses.dataclass(frozen=True)
class QuotaCheck:
    size: int | None
    sold_positions_in_orders: int
    sold_per_availability: int
    availability: dict[str, Any] = dataclasses.field(default_factory=dict)
    oversold: bool = False

    @property
    def sold(self) -> int:
        """The larger of the two counts: either one above the size is an oversell."""
        return max(self.sold_positions_in_orders, self.sold_per_availability)

    @property
    def oversold_by(self) -> int:
        return max(0, self.sold - self.size) if self.size is not None else 0


@dataclasses.dataclass(frozen=True)
class Accounting:
    """The event's orders against the buyers' ledger (see :mod:`.accounting`).

    ``quota`` is None when the accounting itself could not run (the API was
    unreachable): then ``checked`` is False and only ``problems`` say why.
    """

    ok: bool
    problems: tuple[str, ...] = ()
    event: str | None = None
    orders_in_db: int = 0
    orders_by_status: dict[str, int] = dataclasses.field(default_factory=dict)
    attempts_in_ledger: int = 0
    ledger_outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    completed_by_buyers: int = 0
    confirmed_order_page_failed: tuple[str, ...] = ()
    matched: int = 0
    missing: tuple[str, ...] = ()
    completed_but_not_live: tuple[str, ...] = ()
    phantom: tuple[str, ...] = ()
    phantom_unacknowledged: tuple[PhantomOrder, ...] = ()
    phantom_unknown: tuple[str, ...] = ()
    duplicates: Duplicates = Duplicates()
    quota: QuotaCheck | None = None
    error: str | None = None

    @property
    def checked(self) -> bool:
        return self.quota is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Accounting:
        """From :func:`.accounting.reconcile`'s dict, or the failure dict the runner writes."""
        if "orders_in_db" not in data:
            return cls(
                ok=bool(data.get("ok")),
                problems=tuple(data.get("problems") or ()),
                error=data.get("error"),
            )
        tuples = ("problems", "confirmed_order_page_failed", "missing", "completed_but_not_live")
        tuples += ("phantom", "phantom_unknown")
        dup = data.get("duplicates") or {}
        return cls(
            **_known(cls, data)
            | {k: tuple(data.get(k) or ()) for k in tuples}
            | {
                "phantom_unacknowledged": tuple(
                    PhantomOrder(**_known(PhantomOrder, p))
                    for p in data.get("phantom_unacknowledged") or ()
                ),
                "duplicates": Duplicates(
                    attempts_with_several_orders=dup.get("attempts_with_several_orders") or {},
                    codes_claimed_twice=tuple(dup.get("codes_claimed_twice") or ()),
                ),
                "quota": QuotaCheck(**_known(QuotaCheck, data["quota"])),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        if not self.checked:
            failed: dict[str, Any] = {"ok": self.ok, "problems": list(self.problems)}
            return failed | ({"error": self.error} if self.error is not None else {})
        out = dataclasses.asdict(self)
        out.pop("error")
        return out

    def lines(self) -> list[str]:
        """The accounting in a few human lines (console and HTML)."""
        return summary_lines(self.to_dict())


# --------------------------------------------------------------------------- the run


@dataclasses.dataclass(frozen=True)
class Calibration:
    purchases: int
    completed: int
    purchase_s: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunInfo:
    """What the operator asked for and where the run went (fields in summary.json's order)."""

    run_id: str
    stack: str
    scenario: str
    shape: str
    target_per_min: float
    users_override: int | None = None
    duration_s: float
    oversell: bool = False
    event: str
    quota_size: int | None = None
    base_url: str | None = None
    processes: int = 0
    assets: bool = True
    calibration: Calibration
    started_at: str | None = None
    out: str | None = None
    locust_exit_code: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        calibration = Calibration(**_known(Calibration, data["calibration"]))
        return cls(**_known(cls, data) | {"calibration": calibration})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- the figures


@dataclasses.dataclass(frozen=True)
class Distribution:
    """Percentiles of a set of durations in seconds (None when there were none)."""

    n: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    max: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Distribution:
        return cls(**_known(cls, data))


@dataclasses.dataclass(frozen=True)
class PurchaseCounts:
    attempted: int
    completed: int
    failed: int
    interrupted: int
    rejected_sold_out: int
    failure_rate: float | None
    failure_rate_excluding_sold_out: float | None
    errors_by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    errors_by_step: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PhaseFigures:
    """One phase of the plan, measured in its steady window (or whole, when it only ramps)."""

    phase: str
    multiplier: float
    target_per_min: float
    offered_per_min: float
    buyers: int
    capped: bool
    window_s: tuple[float, float]
    steady: bool
    completed: int
    failed: int
    failed_sold_out: int
    completed_per_min: float | None
    failure_rate: float | None  # sold out excluded
    purchase_s: Distribution  # the admitted buyers' purchase time: the queue's wait left out
    # p95 time in the system (wait + purchase) of the phase's attempts; the window opens this
    # long after the ramp
    settle_s: float | None = None
    waited: int = 0  # attempts ended in the window that the waiting room had held
    queue_s: Distribution | None = None  # their wait in line; None when nobody waited

    @property
    def within_budget(self) -> bool:
        """A steady phase with completions and at most 1 % failures."""
        return bool(
            self.steady and self.completed_per_min and (self.failure_rate or 0) <= FAILURE_BUDGET
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhaseFigures:
        return cls(
            **_known(cls, data)
            | {
                "window_s": tuple(data["window_s"]),
                "purchase_s": Distribution.from_dict(data["purchase_s"]),
                "queue_s": Distribution.from_dict(data["queue_s"]) if data.get("queue_s") else None,
            }
        )


@dataclasses.dataclass(frozen=True)
class Sustained:
    """The best steady phase whose failures stayed within the 1 % budget."""

    completed_per_min: float
    phase: str
    failure_rate: float | None
    p95_purchase_s: float | None


@dataclasses.dataclass(frozen=True)
class Throughput:
    test_seconds: float
    completed_per_min_overall: float
    sustained: Sustained | None
    phases: tuple[PhaseFigures, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Throughput:
        sustained = data.get("sustained")
        return cls(
            test_seconds=data["test_seconds"],
            completed_per_min_overall=data["completed_per_min_overall"],
            sustained=Sustained(**_known(Sustained, sustained)) if sustained else None,
            phases=tuple(PhaseFigures.from_dict(p) for p in data["phases"]),
        )


@dataclasses.dataclass(frozen=True)
class Latency:
    purchase: Distribution
    steps: dict[str, Distribution] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Latency:
        return cls(
            purchase=Distribution.from_dict(data["purchase"]),
            steps={s: Distribution.from_dict(d) for s, d in (data.get("steps") or {}).items()},
        )


@dataclasses.dataclass(frozen=True)
class WaitingRoom:
    """The edge's waiting room as the buyers met it (``LoadSummary.queue``, None when it held
    nobody). Purchase times everywhere else are the admitted buyer's, without this wait."""

    buyers_waited: int  # attempts held at least once (completed, failed or cut short)
    holds: int  # answers that held a request back; each was sent again
    longest_line: int | None  # the largest place in line a buyer was given when first held
    wait_s: Distribution  # per buyer who waited: the time until admitted (or given up)
    admitted_purchase_s: Distribution  # completed purchases without the wait (latency_s.purchase)
    in_system_s: Distribution  # completed purchases with the wait: what a buyer lived through

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WaitingRoom:
        dists = ("wait_s", "admitted_purchase_s", "in_system_s")
        return cls(**_known(cls, data) | {k: Distribution.from_dict(data[k]) for k in dists})


@dataclasses.dataclass(frozen=True)
class Retries:
    total: int = 0
    by_kind: dict[str, int] = dataclasses.field(default_factory=dict)
    purchases_with_retries: int = 0
    completed_after_retries: int = 0


@dataclasses.dataclass(frozen=True)
class ComponentCpu:
    """One cluster component's CPU over the run (all its containers)."""

    cpu_s: float
    cpu_s_per_purchase: float | None
    cpu_s_per_purchase_net_of_idle: float | None
    cores_avg: float
    idle_cores: float


@dataclasses.dataclass(frozen=True)
class CpuFigures:
    """The load generator's CPU apart from the cluster's, the cluster's by component."""

    generator_cpu_s: float
    generator_cpu_s_per_purchase: float | None
    generator_cores_avg: float
    cluster_cpu_s: float
    cluster_cpu_s_per_purchase: float | None
    cluster_cpu_s_per_attempt: float | None
    cluster_cores_avg: float
    cluster_by_component: dict[str, ComponentCpu]  # largest first
    cluster_by_service: dict[str, float] = dataclasses.field(default_factory=dict)
    host_busy_cpu_s: float = 0.0
    host_other_cpu_s: float = 0.0  # the machine's CPU used by neither cluster nor generator
    host_cores: int | None = None
    orchestrator_cpu_s: float = 0.0
    containers_seen: int | None = None
    method: str | None = None
    busiest_component: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CpuFigures:
        components = {
            c: ComponentCpu(**_known(ComponentCpu, v))
            for c, v in data["cluster_by_component"].items()
        }
        return cls(**_known(cls, data) | {"cluster_by_component": components})


@dataclasses.dataclass(frozen=True)
class LocustRequest:
    """One row of Locust's own statistics (every try, failures included; ms)."""

    type: str | None
    name: str | None
    count: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclasses.dataclass(frozen=True)
class LoadSummary:
    """Everything one load run measured; ``summary.json`` is its ``to_dict()``."""

    run: RunInfo
    plan: Plan
    purchases: PurchaseCounts
    throughput: Throughput
    latency_s: Latency
    retries: Retries
    cpu: CpuFigures
    accounting: Accounting | None = None
    warnings: tuple[str, ...] = ()
    locust_requests: tuple[LocustRequest, ...] = ()
    queue: WaitingRoom | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run.to_dict(),
            "warnings": list(self.warnings),
            "plan": self.plan.to_dict() | {"model": PLAN_MODEL},
            "purchases": dataclasses.asdict(self.purchases),
            "throughput": dataclasses.asdict(self.throughput),
            "latency_s": dataclasses.asdict(self.latency_s),
            "retries": dataclasses.asdict(self.retries),
            "queue": dataclasses.asdict(self.queue) if self.queue else None,
            "cpu": dataclasses.asdict(self.cpu),
            "accounting": self.accounting.to_dict() if self.accounting else None,
            "locust_requests": [dataclasses.asdict(r) for r in self.locust_requests],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSummary:
        plan = {k: v for k, v in data["plan"].items() if k != "model"}
        accounting = data.get("accounting")
        queue = data.get("queue")
        return cls(
            run=RunInfo.from_dict(data["run"]),
            plan=Plan.from_dict(plan),
            purchases=PurchaseCounts(**_known(PurchaseCounts, data["purchases"])),
            throughput=Throughput.from_dict(data["throughput"]),
            latency_s=Latency.from_dict(data["latency_s"]),
            retries=Retries(**_known(Retries, data.get("retries") or {})),
            queue=WaitingRoom.from_dict(queue) if queue else None,
            cpu=CpuFigures.from_dict(data["cpu"]),
            accounting=Accounting.from_dict(accounting) if accounting else None,
            warnings=tuple(data.get("warnings") or ()),
            locust_requests=tuple(
                LocustRequest(**_known(LocustRequest, r)) for r in data.get("locust_requests", [])
            ),
        )
