"""The run's results: a JSON summary a program can compare, and an HTML report a person reads.

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
import datetime as dt
import itertools
import json
import math
from collections import Counter, defaultdict
from html import escape
from pathlib import Path
from typing import Any

from pretix_cluster.loadtest import svgplot
from pretix_cluster.loadtest.accounting import summary_lines
from pretix_cluster.loadtest.buyer import STEPS
from pretix_cluster.loadtest.ledger import read_ledger
from pretix_cluster.loadtest.shapes import Plan

WINDOW_S = 30.0
PHASE_HEAD = ["phase", "target/min", "offered/min", "buyers", "completed/min", "failures"]
PHASE_HEAD += ["sold out", "p50 s", "p95 s", "steady"]
CPU_HEAD = ["component", "CPU-s", "cores avg", "CPU-s/purchase", "net of idle", "idle cores"]
FAILURE_BUDGET = 0.01  # "without a relevant number of failed purchases": at most 1 %


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def _dist(values: list[float]) -> dict[str, Any]:
    r = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return {
        "n": len(values),
        "p50": r(percentile(values, 50)),
        "p95": r(percentile(values, 95)),
        "p99": r(percentile(values, 99)),
        "mean": r(sum(values) / len(values)) if values else None,
        "max": r(max(values)) if values else None,
    }


def load_records(ledger: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The load's attempts: calibration purchases excluded."""
    return [r for r in ledger if r.get("phase") != "calibration" and r.get("t0")]


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- summary


def phase_figures(
    plan: Plan, records: list[dict[str, Any]], t_start: float
) -> list[dict[str, Any]]:
    """Per phase: target, offered, achieved completions/min in its steady window, failures, p95."""
    out = []
    for p in plan.phases:
        window = p.steady_window(plan.pace_s)
        a, b = window if window else (p.start_s, p.end_s)
        ended = [
            r
            for r in records
            if a <= r["t1"] - t_start < b and r["outcome"] in ("completed", "failed")
        ]
        done = [r for r in ended if r["outcome"] == "completed"]
        failed = [r for r in ended if r["outcome"] != "completed"]
        real_failures = [r for r in failed if r.get("kind") != "sold_out"]
        minutes = (b - a) / 60 if b > a else None
        out.append(
            {
                "phase": p.name,
                "multiplier": p.multiplier,
                "target_per_min": round(p.multiplier * plan.target_per_min, 1),
                "offered_per_min": p.rate_per_min,
                "buyers": p.users,
                "capped": p.capped,
                "window_s": [round(a, 1), round(b, 1)],
                "steady": window is not None,
                "completed": len(done),
                "failed": len(failed),
                "failed_sold_out": len(failed) - len(real_failures),
                "completed_per_min": round(len(done) / minutes, 1) if minutes else None,
                "failure_rate": round(len(real_failures) / len(ended), 4) if ended else None,
                "purchase_s": _dist([r["seconds"] for r in done]),
            }
        )
    return out


def sustained(phases: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best steady phase whose failures stayed within the 1 % budget."""
    ok = [
        p
        for p in phases
        if p["steady"]
        and p["completed_per_min"] is not None
        and (p["failure_rate"] or 0) <= FAILURE_BUDGET
    ]
    if not ok:
        return None
    best = max(ok, key=lambda p: p["completed_per_min"])
    return {
        "completed_per_min": best["completed_per_min"],
        "phase": best["phase"],
        "failure_rate": best["failure_rate"],
        "p95_purchase_s": best["purchase_s"]["p95"],
    }


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
) -> dict[str, Any]:
    records = load_records(ledger)
    done = [r for r in records if r["outcome"] == "completed"]
    failed = [r for r in records if r["outcome"] == "failed"]
    interrupted = [r for r in records if r["outcome"] == "interrupted"]
    kinds = Counter(r.get("kind") for r in failed)
    decided = len(failed) + len(done)  # interrupted: cut short by the end of the test
    sold_out = kinds.get("sold_out", 0)
    steps: dict[str, list[float]] = defaultdict(list)
    for r in done:
        for step, seconds in (r.get("steps") or {}).items():
            steps[step].append(seconds)
    step_order = ["event_page", "event_assets", *STEPS[1:], "api_order"]
    retry_kinds: Counter[str] = Counter()
    for r in records:
        retry_kinds.update(r.get("retry_kinds") or {})
    phases = phase_figures(plan, records, t_start)
    duration = max(t_end - t_start, 1e-9)
    n_done = len(done)
    per_purchase = lambda s: round(s / n_done, 4) if n_done else None  # noqa: E731

    cluster = cpu.get("cluster_by_component", {})
    idle = cpu.get("idle_per_s_by_component", {})
    cpu_out = {
        "generator_cpu_s": round(cpu["generator_cpu_s"], 2),
        "generator_cpu_s_per_purchase": per_purchase(cpu["generator_cpu_s"]),
        "generator_cores_avg": round(cpu["generator_cpu_s"] / duration, 3),
        "cluster_cpu_s": round(sum(cluster.values()), 2),
        "cluster_cpu_s_per_purchase": per_purchase(sum(cluster.values())),
        "cluster_cpu_s_per_attempt": round(sum(cluster.values()) / len(records), 4)
        if records
        else None,
        "cluster_cores_avg": round(sum(cluster.values()) / duration, 3),
        "cluster_by_component": {
            c: {
                "cpu_s": round(s, 2),
                "cpu_s_per_purchase": per_purchase(s),
                "cpu_s_per_purchase_net_of_idle": per_purchase(
                    max(0.0, s - idle.get(c, 0) * duration)
                ),
                "cores_avg": round(s / duration, 3),
                "idle_cores": round(idle.get(c, 0.0), 3),
            }
            for c, s in sorted(cluster.items(), key=lambda kv: -kv[1])
        },
        "cluster_by_service": {
            k: round(v, 2) for k, v in cpu.get("cluster_by_service", {}).items()
        },
        "host_busy_cpu_s": round(cpu.get("host_busy_s", 0.0), 2),
        # the machine's CPU used by neither the cluster nor the generator: other work
        "host_other_cpu_s": round(
            cpu.get("host_busy_s", 0.0)
            - sum(cluster.values())
            - cpu["generator_cpu_s"]
            - cpu.get("orchestrator_cpu_s", 0.0),
            2,
        ),
        "host_cores": cpu.get("host_cores"),
        "orchestrator_cpu_s": round(cpu.get("orchestrator_cpu_s", 0.0), 2),
        "containers_seen": cpu.get("containers"),
        "method": cpu.get("method"),
    }
    saturating = max(cluster.items(), key=lambda kv: kv[1])[0] if cluster else None
    warnings = _warnings(meta, plan, records, interrupted, cpu_out, duration)

    return {
        "run": meta,
        "warnings": warnings,
        "plan": {
            **plan.to_dict(),
            "model": "buyers = ceil(rate/min * pace / 60), pace = D + think",
        },
        "purchases": {
            "attempted": len(records),
            "completed": n_done,
            "failed": len(failed),
            "interrupted": len(interrupted),
            "rejected_sold_out": sold_out,
            "failure_rate": round(len(failed) / decided, 4) if decided else None,
            "failure_rate_excluding_sold_out": round((len(failed) - sold_out) / decided, 4)
            if decided
            else None,
            "errors_by_kind": dict(kinds.most_common()),
            "errors_by_step": dict(Counter(r.get("step") for r in failed).most_common()),
        },
        "throughput": {
            "test_seconds": round(duration, 1),
            "completed_per_min_overall": round(n_done / duration * 60, 1),
            "sustained": sustained(phases),
            "phases": phases,
        },
        "latency_s": {
            "purchase": _dist([r["seconds"] for r in done]),
            "steps": {s: _dist(steps[s]) for s in step_order if s in steps},
        },
        "retries": {
            "total": sum(retry_kinds.values()),
            "by_kind": dict(retry_kinds.most_common()),
            "purchases_with_retries": sum(1 for r in records if r.get("retries")),
            "completed_after_retries": sum(1 for r in done if r.get("retries")),
        },
        "cpu": {**cpu_out, "busiest_component": saturating},
        "accounting": accounting,
        "locust_requests": [
            {
                "type": row.get("Type"),
                "name": row.get("Name"),
                "count": int(row.get("Request Count") or 0),
                "failures": int(row.get("Failure Count") or 0),
                "p50_ms": _num(row.get("50%")),
                "p95_ms": _num(row.get("95%")),
                "p99_ms": _num(row.get("99%")),
            }
            for row in locust_stats
        ],
    }


def _warnings(
    meta: dict[str, Any],
    plan: Plan,
    records: list[dict[str, Any]],
    interrupted: list[dict[str, Any]],
    cpu: dict[str, Any],
    duration: float,
) -> list[str]:
    """What makes this run's figures less than they seem, in plain sentences."""
    out = []
    if meta.get("locust_exit_code") not in (0, None):
        out.append(f"Locust exited with code {meta['locust_exit_code']}: see locust.out.")
    if not records:
        out.append("no purchase was attempted under load: see locust.out and locust.log.")
    processes = max(1, int(meta.get("processes") or 0))
    if cpu["generator_cores_avg"] / processes > 0.8:
        out.append(
            f"the load generator used {cpu['generator_cores_avg']:.2f} cores in {processes} "
            "process(es): it may have limited the load; use --processes."
        )
    other = cpu.get("host_other_cpu_s", 0.0) / duration
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

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:980px;color:#222}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.sub{color:#666} .cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:20px} .ok{background:#eaf6ec;border-color:#9c9}
.bad{background:#fbeaea;border-color:#d99}
.warn{background:#fff8e1;border-color:#e0c060;margin:6px 0}
table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right} th{background:#f6f6f6}
td:first-child,th:first-child{text-align:left}
svg.chart{width:100%;height:auto;margin:6px 0 14px}
svg .title{font-weight:600;font-size:13px} svg .tick,svg .legend,svg .band{font-size:11px}
svg .band{fill:#777} svg .label{font-size:11px;fill:#555} svg .grid{stroke:#e4e4e4}
svg .axis{stroke:#999}
"""


def _table(head: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{escape(str(x))}</th>" for x in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if x is None else str(x))}</td>" for x in r) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{h}</tr>{body}</table>"


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f}"


def render_html(
    summary: dict[str, Any],
    plan: Plan,
    records: list[dict[str, Any]],
    t_start: float,
    t_end: float,
    history: list[dict[str, str]],
    cpu_samples: list[tuple[float, dict[str, float]]],
    generator_samples: list[tuple[float, float]],
) -> str:
    ts = time_series(records, t_start, t_end)
    x = ts["x"]
    bands = [(p.start_s, p.end_s, p.name) for p in plan.phases]
    target_line = []
    for p in plan.phases:
        target_line += [(p.start_s, p.rate_per_min), (p.end_s, p.rate_per_min)]
    run = summary["run"]
    pur = summary["purchases"]
    thr = summary["throughput"]
    lat = summary["latency_s"]
    acc = summary.get("accounting")
    cpu = summary["cpu"]

    def pts(values: list[float | None]) -> list[tuple[float, float | None]]:
        return list(zip(x, values, strict=False))

    xr = (0.0, max(t_end - t_start, plan.duration_s))
    common: dict[str, Any] = {"bands": bands, "x_range": xr}
    failed_series = [svgplot.Series(k, pts(v)) for k, v in ts["failed_per_min_by_kind"].items()]
    charts = [
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
    cpu_lines = cpu_series(cpu_samples, t_start)
    top = sorted(cpu_lines, key=lambda c: -sum(v or 0 for _, v in cpu_lines[c]))
    shown, rest = top[:5], top[5:]
    cpu_chart = [svgplot.Series(c, cpu_lines[c]) for c in shown]
    if rest:
        other: dict[float, float] = defaultdict(float)
        for c in rest:
            for t, v in cpu_lines[c]:
                other[t] += v or 0.0
        cpu_chart.append(svgplot.Series("other components", sorted(other.items()), "#aaa"))
    gen = [
        (tb - t_start, (b - a) / (tb - ta))
        for (ta, a), (tb, b) in itertools.pairwise(generator_samples)
        if tb > ta
    ]
    cpu_chart.append(svgplot.Series("load generator (not cluster)", gen, "#000", dashed=True))
    charts.append(
        svgplot.line_chart(
            "CPU cores in use: cluster components and the load generator",
            cpu_chart,
            y_label="cores",
            **common,
        )
    )
    per_purchase = [
        (c, v["cpu_s_per_purchase"])
        for c, v in cpu["cluster_by_component"].items()
        if v["cpu_s_per_purchase"]
    ]
    if cpu.get("generator_cpu_s_per_purchase"):
        per_purchase.append(("load gen.", cpu["generator_cpu_s_per_purchase"]))
    if per_purchase:
        charts.append(
            svgplot.bar_chart("CPU-seconds per completed purchase", per_purchase, unit="CPU-s")
        )

    acc_html = ""
    if acc:
        cls = "ok" if acc["ok"] else "bad"
        acc_html = (
            f'<div class="card {cls}"><b>Accounting {"OK" if acc["ok"] else "FAILED"}</b>'
            + "<br>".join(escape(s) for s in summary_lines(acc))
            + "</div>"
        )
        details = [
            [u["code"], "unacknowledged phantom", u.get("step"), u.get("kind"), u.get("message")]
            for u in acc.get("phantom_unacknowledged", [])
        ]
        details += [[c, "unknown phantom", "", "", ""] for c in acc.get("phantom_unknown", [])]
        details += [[c, "missing (lost)", "", "", ""] for c in acc.get("missing", [])]
        if details:
            acc_html += _table(["order", "problem", "step", "kind", "what the buyer saw"], details)
    warn_html = "".join(
        f'<div class="card warn">{escape(w)}</div>' for w in summary.get("warnings", [])
    )
    sus = thr.get("sustained") or {}
    cards = [
        ("attempted", pur["attempted"]),
        ("completed", pur["completed"]),
        ("failed", f"{pur['failed']} ({(pur['failure_rate'] or 0) * 100:.2f} %)"),
        ("sold out", pur["rejected_sold_out"]),
        ("sustained /min (≤1 % fail)", sus.get("completed_per_min", "—")),
        ("p95 purchase", f"{lat['purchase']['p95'] or 0:.2f} s"),
        ("busy retries", summary["retries"]["total"]),
        ("cluster CPU-s / purchase", cpu["cluster_cpu_s_per_purchase"]),
        ("generator CPU-s / purchase", cpu["generator_cpu_s_per_purchase"]),
    ]
    card_html = "".join(
        f'<div class="card">{escape(k)}<b>{escape(str(v))}</b></div>' for k, v in cards
    )
    phase_rows = [
        [
            p["phase"],
            p["target_per_min"],
            p["offered_per_min"],
            p["buyers"],
            p["completed_per_min"],
            "" if p["failure_rate"] is None else f"{p['failure_rate'] * 100:.2f} %",
            p["failed_sold_out"],
            p["purchase_s"]["p50"],
            p["purchase_s"]["p95"],
            "yes" if p["steady"] else "no (ramp)",
        ]
        for p in thr["phases"]
    ]
    step_rows = [
        [s, d["n"], _ms(d["p50"]), _ms(d["p95"]), _ms(d["p99"]), _ms(d["max"])]
        for s, d in [("purchase", lat["purchase"]), *lat["steps"].items()]
    ]
    kind_rows = [[k, v] for k, v in pur["errors_by_kind"].items()]
    retry_rows = [[k, v] for k, v in summary["retries"]["by_kind"].items()]
    cpu_rows = [
        [
            c,
            v["cpu_s"],
            v["cores_avg"],
            v["cpu_s_per_purchase"],
            v["cpu_s_per_purchase_net_of_idle"],
            v["idle_cores"],
        ]
        for c, v in cpu["cluster_by_component"].items()
    ]
    cpu_rows.append(
        [
            "load generator (not cluster)",
            cpu["generator_cpu_s"],
            cpu["generator_cores_avg"],
            cpu["generator_cpu_s_per_purchase"],
            "",
            "",
        ]
    )
    locust_rows = [
        [
            f"{r['type']} {r['name']}",
            r["count"],
            r["failures"],
            r["p50_ms"],
            r["p95_ms"],
            r["p99_ms"],
        ]
        for r in summary["locust_requests"]
    ]
    started = dt.datetime.fromtimestamp(t_start, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Load test {escape(run["run_id"])}</title>
<style>{_CSS}</style></head><body>
<h1>pretix-cluster load test: {escape(run["scenario"])} flow, {escape(plan.shape)} shape</h1>
<div class="sub">{escape(started)} · stack {escape(run["stack"])} · event {escape(run["event"])}
 · target {plan.target_per_min:.1f} purchases/min · {plan.duration_s:g} s · pace {plan.pace_s:g} s
 (calibrated purchase {run["calibration"]["purchase_s"]:.2f} s)</div>
<div class="cards">{card_html}</div>
{acc_html}
{warn_html}
<h2>Over time</h2>
{"".join(charts)}
<h2>Phases (steady windows)</h2>
{_table(PHASE_HEAD, phase_rows)}
<h2>Latency per step (completed purchases, ms)</h2>
{_table(["step", "n", "p50", "p95", "p99", "max"], step_rows)}
<h2>Failures by kind</h2>
{_table(["kind", "purchases"], kind_rows) if kind_rows else "<p>none</p>"}
<h2>Busy retries by kind</h2>
{_table(["kind", "retries"], retry_rows) if retry_rows else "<p>none</p>"}
<h2>CPU</h2>
<p>Cluster: cgroup counters per container ({escape(str(cpu.get("method")))}), summed per component.
Load generator: the Locust process tree, measured separately and never counted as the cluster's.
"net of idle" subtracts each component's CPU while the cluster was idle before the run.</p>
{_table(CPU_HEAD, cpu_rows)}
<h2>Locust requests (every try, incl. failures; ms)</h2>
{_table(["request", "count", "failures", "p50", "p95", "p99"], locust_rows)}
<p class="sub">Files: summary.json, ledger-*.jsonl, locust_stats.csv, locust_stats_history.csv,
locust_failures.csv, locust.html, locust.log.</p>
</body></html>
"""


def write_outputs(
    out: Path, summary: dict[str, Any], html: str, samples: dict[str, Any] | None = None
) -> None:
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (out / "report.html").write_text(html)
    if samples is not None:
        (out / "samples.json").write_text(json.dumps(samples) + "\n")


def rebuild_html(out: Path) -> Path:
    """Re-render report.html from a results folder (summary, samples, ledger, Locust CSV)."""
    summary = json.loads((out / "summary.json").read_text())
    samples = json.loads((out / "samples.json").read_text())
    plan_data = {k: v for k, v in summary["plan"].items() if k != "model"}
    html = render_html(
        summary,
        Plan.from_dict(plan_data),
        load_records(read_ledger(out / "ledger")),
        samples["t_start"],
        samples["t_end"],
        read_csv(out / "locust_stats_history.csv"),
        [(t, d) for t, d in samples["cluster"]],
        [(t, v) for t, v in samples["generator"]],
    )
    (out / "report.html").write_text(html)
    return out / "report.html"
