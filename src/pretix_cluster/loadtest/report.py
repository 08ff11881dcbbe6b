"""The run's results: a JSON summary a program can compare, and an HTML report a person reads.

:func:`build_summary` turns the ledger, CPU counters and the accounting into a
typed :class:`~pretix_cluster.loadtest.summary.LoadSummary` (``summary.json``);
:func:`render_html` lays out its charts and tables for the ``loadtest.html.j2``
template of :mod:`pretix_cluster.reports`.

Figures come from the ledger (what the buyers saw, exact per purchase), not
from Locust's rolling windows; Locust's own CSV and HTML sit next to them.
The summary keeps the load generator's CPU apart from the cluster's:
generator CPU is the Locust process tree (``RUSAGE_CHILDREN``), cluster CPU is
the containers' cgroup counters, both turned into CPU-seconds per completed
purchase; the cluster's is also split by component (web, worker, pg, ...).
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import datetime as dt
import itertools
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pretix_cluster import reports
from pretix_cluster.loadtest.buyer import STEPS
from pretix_cluster.loadtest.shapes import Phase, Plan
from pretix_cluster.loadtest.summary import (
    FAILURE_BUDGET,
    Accounting,
    ComponentCpu,
    CpuFigures,
    Distribution,
    Latency,
    LoadSummary,
    LocustRequest,
    PhaseFigures,
    PurchaseCounts,
    Retries,
    RunInfo,
    Sustained,
    Throughput,
    WaitingRoom,
)
from pretix_cluster.reports import svgplot

WINDOW_S = 30.0


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def _dist(values: list[float]) -> Distribution:
    r = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return Distribution(
        n=len(values),
        p50=r(percentile(values, 50)),
        p95=r(percentile(values, 95)),
        p99=r(percentile(values, 99)),
        mean=r(sum(values) / len(values)) if values else None,
        max=r(max(values)) if values else None,
    )


def load_records(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The load's attempts: calibration purchases excluded."""
    return [r for r in ledger if r.get("phase") != "calibration" and r.get("t0")]


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- summary


def phase_figures(plan: Plan, records: list[dict[str, Any]], t_start: float) -> list[PhaseFigures]:
    """Per phase: target, offered, achieved completions/min in its steady window, failures, p95."""
    out = []
    for p in plan.phases:
        settle = settle_seconds(p, records, t_start)
        window = p.steady_window(plan.pace_s, settle or 0.0)
        a, b = window if window else (p.start_s, p.end_s)
        ended = [
            r
            for r in records
            if a <= r["t1"] - t_start < b and r["outcome"] in ("completed", "failed")
        ]
        done = [r for r in ended if r["outcome"] == "completed"]
        failed = [r for r in ended if r["outcome"] != "completed"]
        real_failures = [r for r in failed if r.get("kind") != "sold_out"]
        waited = [r["queue_s"] for r in ended if r.get("queue_holds")]
        minutes = (b - a) / 60 if b > a else None
        out.append(
            PhaseFigures(
                phase=p.name,
                multiplier=p.multiplier,
                target_per_min=round(p.multiplier * plan.target_per_min, 1),
                offered_per_min=p.rate_per_min,
                buyers=p.users,
                capped=p.capped,
                window_s=(round(a, 1), round(b, 1)),
                steady=window is not None,
                settle_s=settle,
                completed=len(done),
                failed=len(failed),
                failed_sold_out=len(failed) - len(real_failures),
                completed_per_min=round(len(done) / minutes, 1) if minutes else None,
                failure_rate=round(len(real_failures) / len(ended), 4) if ended else None,
                purchase_s=_dist([r["seconds"] for r in done]),
                waited=len(waited),
                queue_s=_dist(waited) if waited else None,
            )
        )
    return out


def settle_seconds(phase: Phase, records: list[dict[str, Any]], t_start: float) -> float | None:
    """p95 of the time in the system of the attempts started in ``phase`` (completed or failed).

    A completion counted in a phase's window must come from a buyer cycling at
    the phase's load: one started in the ramp ends only this long after it (at
    overload, tens of seconds), and a window opened earlier undercounts. The
    time is the waiting room's wait plus the purchase, not the admitted
    purchase alone: a held buyer completes only after both, so by Little's
    law the buyers in the system at a rate are that rate times the whole time
    (a window timed by the purchase alone would open while the ramp's buyers
    were still in line).
    """
    durations = [
        in_system_seconds(r)
        for r in records
        if phase.start_s <= r["t0"] - t_start < phase.end_s
        and r["outcome"] in ("completed", "failed")
        and r.get("seconds") is not None
    ]
    value = percentile(durations, 95)
    return None if value is None else round(value, 1)


def in_system_seconds(record: dict[str, Any]) -> float:
    """A buyer's time from arrival to the last page: the queue's wait and the purchase."""
    return record["seconds"] + (record.get("queue_s") or 0.0)


def sustained(phases: list[PhaseFigures]) -> Sustained | None:
    """The best steady phase whose failures stayed within the 1 % budget."""
    ok = [
        p
        for p in phases
        if p.steady and p.completed_per_min is not None and (p.failure_rate or 0) <= FAILURE_BUDGET
    ]
    if not ok:
        return None
    best = max(ok, key=lambda p: p.completed_per_min or 0.0)
    return Sustained(
        completed_per_min=best.completed_per_min or 0.0,
        phase=best.phase,
        failure_rate=best.failure_rate,
        p95_purchase_s=best.purchase_s.p95,
    )


def build_summary(
    *,
    meta: dict[str, Any],
    plan: Plan,
    ledger: list[dict[str, Any]],
    t_start: float,
    t_end: float,
    accounting: dict[str, Any] | None,
    cpu: dict[str, Any],
    locust_stats: list[dict[str, str]],
) -> LoadSummary:
    """The run's figures from the ledger, the accounting's dict, CPU counters and Locust's CSV."""
    records = load_records(ledger)
    done = [r for r in records if r["outcome"] == "completed"]
    failed = [r for r in records if r["outcome"] == "failed"]
    interrupted = [r for r in records if r["outcome"] == "interrupted"]
    duration = max(t_end - t_start, 1e-9)
    phases = phase_figures(plan, records, t_start)
    cpu_figures = _cpu_figures(cpu, n_done=len(done), n_attempts=len(records), duration=duration)
    run = RunInfo.from_dict(meta)
    return LoadSummary(
        run=run,
        warnings=tuple(_warnings(run, plan, records, interrupted, cpu_figures, duration)),
        plan=plan,
        purchases=_purchase_counts(records, done, failed, interrupted),
        throughput=Throughput(
            test_seconds=round(duration, 1),
            completed_per_min_overall=round(len(done) / duration * 60, 1),
            sustained=sustained(phases),
            phases=tuple(phases),
        ),
        latency_s=_latency(done),
        retries=_retries(records, done),
        queue=waiting_room(records, done),
        cpu=cpu_figures,
        accounting=Accounting.from_dict(accounting) if accounting is not None else None,
        locust_requests=tuple(_locust_request(row) for row in locust_stats),
    )


def _purchase_counts(
    records: list[dict[str, Any]],
    done: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    interrupted: list[dict[str, Any]],
) -> PurchaseCounts:
    kinds = Counter(r.get("kind") for r in failed)
    decided = len(failed) + len(done)  # interrupted: cut short by the end of the test
    sold_out = kinds.get("sold_out", 0)
    return PurchaseCounts(
        attempted=len(records),
        completed=len(done),
        failed=len(failed),
        interrupted=len(interrupted),
        rejected_sold_out=sold_out,
        failure_rate=round(len(failed) / decided, 4) if decided else None,
        failure_rate_excluding_sold_out=round((len(failed) - sold_out) / decided, 4)
        if decided
        else None,
        errors_by_kind=dict(kinds.most_common()),
        errors_by_step=dict(Counter(r.get("step") for r in failed).most_common()),
    )


def _latency(done: list[dict[str, Any]]) -> Latency:
    steps: dict[str, list[float]] = defaultdict(list)
    for r in done:
        for step, seconds in (r.get("steps") or {}).items():
            steps[step].append(seconds)
    step_order = ["event_page", "event_assets", *STEPS[1:], "api_order"]
    return Latency(
        purchase=_dist([r["seconds"] for r in done]),
        steps={s: _dist(steps[s]) for s in step_order if s in steps},
    )


def _retries(records: list[dict[str, Any]], done: list[dict[str, Any]]) -> Retries:
    retry_kinds: Counter[str] = Counter()
    for r in records:
        retry_kinds.update(r.get("retry_kinds") or {})
    return Retries(
        total=sum(retry_kinds.values()),
        by_kind=dict(retry_kinds.most_common()),
        purchases_with_retries=sum(1 for r in records if r.get("retries")),
        completed_after_retries=sum(1 for r in done if r.get("retries")),
    )


def waiting_room(records: list[dict[str, Any]], done: list[dict[str, Any]]) -> WaitingRoom | None:
    """How the waiting room held the run's buyers; None when it held nobody."""
    waited = [r for r in records if r.get("queue_holds")]
    if not waited:
        return None
    return WaitingRoom(
        buyers_waited=len(waited),
        holds=sum(r["queue_holds"] for r in waited),
        longest_line=max(
            (r["queue_position"] for r in waited if r.get("queue_position")), default=None
        ),
        wait_s=_dist([r["queue_s"] for r in waited]),
        admitted_purchase_s=_dist([r["seconds"] for r in done]),
        in_system_s=_dist([in_system_seconds(r) for r in done]),
    )


def _cpu_figures(
    cpu: dict[str, Any], *, n_done: int, n_attempts: int, duration: float
) -> CpuFigures:
    """CPU-seconds per purchase of the generator and of each cluster component."""
    per_purchase = lambda s: round(s / n_done, 4) if n_done else None  # noqa: E731
    cluster = cpu.get("cluster_by_component", {})
    idle = cpu.get("idle_per_s_by_component", {})
    cluster_s = sum(cluster.values())
    generator_s = cpu["generator_cpu_s"]
    return CpuFigures(
        generator_cpu_s=round(generator_s, 2),
        generator_cpu_s_per_purchase=per_purchase(generator_s),
        generator_cores_avg=round(generator_s / duration, 3),
        cluster_cpu_s=round(cluster_s, 2),
        cluster_cpu_s_per_purchase=per_purchase(cluster_s),
        cluster_cpu_s_per_attempt=round(cluster_s / n_attempts, 4) if n_attempts else None,
        cluster_cores_avg=round(cluster_s / duration, 3),
        cluster_by_component={
            c: ComponentCpu(
                cpu_s=round(s, 2),
                cpu_s_per_purchase=per_purchase(s),
                cpu_s_per_purchase_net_of_idle=per_purchase(
                    max(0.0, s - idle.get(c, 0) * duration)
                ),
                cores_avg=round(s / duration, 3),
                idle_cores=round(idle.get(c, 0.0), 3),
            )
            for c, s in sorted(cluster.items(), key=lambda kv: -kv[1])
        },
        cluster_by_service={k: round(v, 2) for k, v in cpu.get("cluster_by_service", {}).items()},
        host_busy_cpu_s=round(cpu.get("host_busy_s", 0.0), 2),
        host_other_cpu_s=round(
            cpu.get("host_busy_s", 0.0)
            - cluster_s
            - generator_s
            - cpu.get("orchestrator_cpu_s", 0.0),
            2,
        ),
        host_cores=cpu.get("host_cores"),
        orchestrator_cpu_s=round(cpu.get("orchestrator_cpu_s", 0.0), 2),
        containers_seen=cpu.get("containers"),
        method=cpu.get("method"),
        busiest_component=max(cluster.items(), key=lambda kv: kv[1])[0] if cluster else None,
    )


def _locust_request(row: dict[str, str]) -> LocustRequest:
    return LocustRequest(
        type=row.get("Type"),
        name=row.get("Name"),
        count=int(row.get("Request Count") or 0),
        failures=int(row.get("Failure Count") or 0),
        p50_ms=_num(row.get("50%")),
        p95_ms=_num(row.get("95%")),
        p99_ms=_num(row.get("99%")),
    )


def _warnings(
    run: RunInfo,
    plan: Plan,
    records: list[dict[str, Any]],
    interrupted: list[dict[str, Any]],
    cpu: CpuFigures,
    duration: float,
) -> list[str]:
    """What makes this run's figures less than they seem, in plain sentences."""
    out = []
    if run.locust_exit_code not in (0, None):
        out.append(f"Locust exited with code {run.locust_exit_code}: see locust.out.")
    if not records:
        out.append("no purchase was attempted under load: see locust.out and locust.log.")
    processes = max(1, run.processes)
    if cpu.generator_cores_avg / processes > 0.8:
        out.append(
            f"the load generator used {cpu.generator_cores_avg:.2f} cores in {processes} "
            "process(es): it may have limited the load; use --processes."
        )
    other = cpu.host_other_cpu_s / duration
    if other > 0.5:
        out.append(
            f"other work on this machine used {other:.2f} cores on average during the run: "
            "latencies and capacity are those of a shared machine."
        )
    capped = [p.name for p in plan.phases if p.capped]
    if capped:
        out.append(f"max users capped the offered load in: {', '.join(capped)}.")
    if interrupted:
        out.append(
            f"{len(interrupted)} purchase(s) were cut short when the test stopped; they are "
            "neither completed nor failed, and the accounting covers them."
        )
    return out


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- time series


def time_series(records: list[dict[str, Any]], t_start: float, t_end: float) -> dict[str, Any]:
    """Sliding-window series by purchase end time: completions/min, failures/min by kind,
    busy retries/min, purchase and step percentiles. Points every ``step`` seconds over
    the last ``window`` seconds (5 s / 30 s for short runs), smooth enough to read."""
    span = max(t_end - t_start, 1.0)
    step = max(5.0, span / 150)
    window = max(WINDOW_S, 6 * step)
    xs = [round(step * (i + 1), 1) for i in range(max(1, math.ceil(span / step)))]
    ends = sorted(records, key=lambda r: r["t1"])
    t1s = [r["t1"] - t_start for r in ends]
    kinds = sorted({r.get("kind") or r["outcome"] for r in ends if r["outcome"] != "completed"})
    step_names = sorted(
        {s for r in ends if r["outcome"] == "completed" for s in r.get("steps") or {}}
    )
    out: dict[str, Any] = {
        "x": xs,
        "completed_per_min": [],
        "failed_per_min": [],
        "failed_per_min_by_kind": {k: [] for k in kinds},
        "retries_per_min": [],
        "purchase_p50": [],
        "purchase_p95": [],
        "purchase_p99": [],
        "step_p95": {s: [] for s in step_names},
    }
    for x in xs:
        lo, hi = bisect.bisect_right(t1s, x - window), bisect.bisect_right(t1s, x)
        in_window = ends[lo:hi]
        per_min = 60 / min(window, x)
        done = [r for r in in_window if r["outcome"] == "completed"]
        failed = Counter(
            r.get("kind") or r["outcome"] for r in in_window if r["outcome"] != "completed"
        )
        secs = [r["seconds"] for r in done]
        out["completed_per_min"].append(len(done) * per_min)
        out["failed_per_min"].append(sum(failed.values()) * per_min)
        for k in kinds:
            out["failed_per_min_by_kind"][k].append(failed.get(k, 0) * per_min)
        out["retries_per_min"].append(sum(r.get("retries") or 0 for r in in_window) * per_min)
        for q in (50, 95, 99):
            out[f"purchase_p{q}"].append(percentile(secs, q))
        for s in step_names:
            vals = [r["steps"][s] for r in done if s in (r.get("steps") or {})]
            out["step_p95"][s].append(percentile(vals, 95))
    return out


def users_series(history: list[dict[str, str]], t_start: float) -> list[tuple[float, float]]:
    pts = []
    for row in history:
        if row.get("Name") == "Aggregated":
            try:
                pts.append((float(row["Timestamp"]) - t_start, float(row["User Count"])))
            except (KeyError, ValueError):
                continue
    return pts


def cpu_series(samples: list[tuple[float, dict[str, float]]], t_start: float) -> dict[str, list]:
    """Cores in use per component between consecutive cumulative samples."""
    out: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    for (ta, a), (tb, b) in itertools.pairwise(samples):
        dt_s = tb - ta
        if dt_s <= 0:
            continue
        for comp in set(a) | set(b):
            out[comp].append((tb - t_start, max(0.0, b.get(comp, 0) - a.get(comp, 0)) / dt_s))
    return dict(out)


# --------------------------------------------------------------------------- HTML


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What report.html shows beyond the summary: charts, and the tables' rows as values."""

    summary: LoadSummary
    plan: Plan
    started: str
    charts: tuple[svgplot.Chart, ...]
    accounting_problems: tuple[tuple[Any, ...], ...]
    phase_rows: tuple[tuple[Any, ...], ...]
    queue_rows: tuple[tuple[Any, ...], ...]  # shown when the waiting room held anyone
    step_rows: tuple[tuple[Any, ...], ...]
    cpu_rows: tuple[tuple[Any, ...], ...]
    locust_rows: tuple[tuple[Any, ...], ...]


def render_html(
    summary: LoadSummary,
    plan: Plan,
    records: list[dict[str, Any]],
    t_start: float,
    t_end: float,
    history: list[dict[str, str]],
    cpu_samples: list[tuple[float, dict[str, float]]],
    generator_samples: list[tuple[float, float]],
) -> str:
    charts = [
        *_time_charts(plan, records, t_start, t_end, history),
        _cpu_chart(plan, t_start, t_end, cpu_samples, generator_samples),
    ]
    per_purchase = _cpu_per_purchase_chart(summary.cpu)
    if per_purchase is not None:
        charts.append(per_purchase)
    started = dt.datetime.fromtimestamp(t_start, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    view = LoadReport(
        summary=summary,
        plan=plan,
        started=started,
        charts=tuple(charts),
        accounting_problems=_accounting_problems(summary.accounting),
        phase_rows=tuple(_phase_row(p) for p in summary.throughput.phases),
        queue_rows=tuple(_queue_row(p) for p in summary.throughput.phases),
        step_rows=tuple(
            (s, d.n, _ms(d.p50), _ms(d.p95), _ms(d.p99), _ms(d.max))
            for s, d in [("purchase", summary.latency_s.purchase), *summary.latency_s.steps.items()]
        ),
        cpu_rows=_cpu_rows(summary.cpu),
        locust_rows=tuple(
            (f"{r.type} {r.name}", r.count, r.failures, r.p50_ms, r.p95_ms, r.p99_ms)
            for r in summary.locust_requests
        ),
    )
    return reports.render("loadtest.html.j2", report=view)


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f}"


def _phase_row(p: PhaseFigures) -> tuple[Any, ...]:
    return (
        p.phase,
        p.target_per_min,
        p.offered_per_min,
        p.buyers,
        p.completed_per_min,
        "" if p.failure_rate is None else f"{p.failure_rate * 100:.2f} %",
        p.failed_sold_out,
        p.purchase_s.p50,
        p.purchase_s.p95,
        "yes" if p.steady else "no (ramp)",
    )


def _queue_row(p: PhaseFigures) -> tuple[Any, ...]:
    """The phase's wait in line next to its admitted buyers' purchase time (seconds)."""
    q = p.queue_s or Distribution()
    return (p.phase, p.waited, q.p50, q.p95, q.max, p.purchase_s.p95)


def _cpu_rows(cpu: CpuFigures) -> tuple[tuple[Any, ...], ...]:
    rows = [
        (
            c,
            v.cpu_s,
            v.cores_avg,
            v.cpu_s_per_purchase,
            v.cpu_s_per_purchase_net_of_idle,
            v.idle_cores,
        )
        for c, v in cpu.cluster_by_component.items()
    ]
    rows.append(
        (
            "load generator (not cluster)",
            cpu.generator_cpu_s,
            cpu.generator_cores_avg,
            cpu.generator_cpu_s_per_purchase,
            "",
            "",
        )
    )
    return tuple(rows)


def _accounting_problems(acc: Accounting | None) -> tuple[tuple[Any, ...], ...]:
    """One row per order the accounting could not match: phantom or lost."""
    if acc is None:
        return ()
    rows = [
        (u.code, "unacknowledged phantom", u.step, u.kind, u.message)
        for u in acc.phantom_unacknowledged
    ]
    rows += [(c, "unknown phantom", "", "", "") for c in acc.phantom_unknown]
    rows += [(c, "missing (lost)", "", "", "") for c in acc.missing]
    return tuple(rows)


def _time_charts(
    plan: Plan,
    records: list[dict[str, Any]],
    t_start: float,
    t_end: float,
    history: list[dict[str, str]],
) -> list[svgplot.Chart]:
    """Throughput, purchase and step percentiles, buyers and failures over the run."""
    ts = time_series(records, t_start, t_end)
    x = ts["x"]

    def pts(values: list[float | None]) -> list[tuple[float, float | None]]:
        return list(zip(x, values, strict=False))

    target_line = []
    for p in plan.phases:
        target_line += [(p.start_s, p.rate_per_min), (p.end_s, p.rate_per_min)]
    common = _chart_frame(plan, t_start, t_end)
    failed_series = [svgplot.Series(k, pts(v)) for k, v in ts["failed_per_min_by_kind"].items()]
    return [
        svgplot.line_chart(
            f"Throughput: purchases per minute (sliding {WINDOW_S:g} s window)",
            [
                svgplot.Series("completed/min", pts(ts["completed_per_min"]), "#2ca02c"),
                svgplot.Series("failed/min", pts(ts["failed_per_min"]), "#d62728"),
                svgplot.Series("offered/min (plan)", target_line, "#777", dashed=True),
            ],
            y_label="purchases/min",
            **common,
        ),
        svgplot.line_chart(
            "Purchase time percentiles (completed purchases, by completion time)",
            [
                svgplot.Series("p50", pts(ts["purchase_p50"])),
                svgplot.Series("p95", pts(ts["purchase_p95"])),
                svgplot.Series("p99", pts(ts["purchase_p99"])),
            ],
            y_label="seconds",
            **common,
        ),
        svgplot.line_chart(
            "p95 per step",
            [svgplot.Series(s, pts(v)) for s, v in ts["step_p95"].items()],
            y_label="seconds",
            **common,
        ),
        svgplot.line_chart(
            "Concurrent buyers (Locust users)",
            [svgplot.Series("buyers", users_series(history, t_start), "#1f77b4")],
            y_label="buyers",
            integer_y=True,
            **common,
        ),
        svgplot.line_chart(
            "Failed purchases by kind, and busy retries, per minute",
            [*failed_series, svgplot.Series("busy retries", pts(ts["retries_per_min"]), "#999")],
            y_label="per minute",
            **common,
        ),
    ]


def _chart_frame(plan: Plan, t_start: float, t_end: float) -> dict[str, Any]:
    """The x axis every chart over time shares: the whole run, its phases shaded."""
    return {
        "bands": [(p.start_s, p.end_s, p.name) for p in plan.phases],
        "x_range": (0.0, max(t_end - t_start, plan.duration_s)),
    }


def _cpu_chart(
    plan: Plan,
    t_start: float,
    t_end: float,
    cpu_samples: list[tuple[float, dict[str, float]]],
    generator_samples: list[tuple[float, float]],
) -> svgplot.Chart:
    """Cores in use: the five busiest components, the rest summed, and the load generator."""
    cpu_lines = cpu_series(cpu_samples, t_start)
    top = sorted(cpu_lines, key=lambda c: -sum(v or 0 for _, v in cpu_lines[c]))
    shown, rest = top[:5], top[5:]
    series = [svgplot.Series(c, cpu_lines[c]) for c in shown]
    if rest:
        other: dict[float, float] = defaultdict(float)
        for c in rest:
            for t, v in cpu_lines[c]:
                other[t] += v or 0.0
        series.append(svgplot.Series("other components", sorted(other.items()), "#aaa"))
    gen = [
        (tb - t_start, (b - a) / (tb - ta))
        for (ta, a), (tb, b) in itertools.pairwise(generator_samples)
        if tb > ta
    ]
    series.append(svgplot.Series("load generator (not cluster)", gen, "#000", dashed=True))
    return svgplot.line_chart(
        "CPU cores in use: cluster components and the load generator",
        series,
        y_label="cores",
        **_chart_frame(plan, t_start, t_end),
    )


def _cpu_per_purchase_chart(cpu: CpuFigures) -> svgplot.Chart | None:
    items = [
        (c, v.cpu_s_per_purchase)
        for c, v in cpu.cluster_by_component.items()
        if v.cpu_s_per_purchase
    ]
    if cpu.generator_cpu_s_per_purchase:
        items.append(("load gen.", cpu.generator_cpu_s_per_purchase))
    if not items:
        return None
    return svgplot.bar_chart("CPU-seconds per completed purchase", items, unit="CPU-s")


def write_outputs(
    out: Path, summary: LoadSummary, html: str, samples: dict[str, Any] | None = None
) -> None:
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    (out / "report.html").write_text(html)
    if samples is not None:
        (out / "samples.json").write_text(json.dumps(samples) + "\n")
