"""The bench's arithmetic: pure functions of load-test summaries, CPU samples and the spec.

Inputs per run are the load test's ``summary.json`` (figures from the buyers'
ledger, CPU by component over the whole run) and ``samples.json`` (cumulative
CPU seconds per component, sampled every ~2 s), from which the CPU inside each
phase's steady window is interpolated.

- **Sustained purchases/min** is the load test's own: the best steady phase
  whose failures (sold-out excluded) stayed within 1 %.
- **Ratios** cluster / baseline: of sustained purchases/min, and of p95
  purchase time at the heaviest phase both held within the 1 % budget (the
  same offered load on both; p95 at different loads would compare nothing).
  Purchase times are the admitted buyers': a wait in the edge's waiting room
  is not in them and is shown apart, per phase (``queue_p95_s``).
- **First to saturate**: at the heaviest steady phase, each component's CPU
  (cores) against what it can use at most: a gunicorn sync worker or a celery
  process is one Python process (one core at most, the GIL), so web can use
  ``replicas x gunicorn_workers`` cores and the worker ``replicas x
  concurrency``; PostgreSQL, Redis, nginx and HAProxy are bounded by the
  host's cores. The highest utilisation saturates first; when the host itself
  was (nearly) busy, the host's CPU is the limit and the component with the
  largest share is named.
- **Capacity for a rate R** (purchases/min), per component with ``c`` CPU-s
  per purchase (all its CPU during the run, idle work such as health checks
  included: conservative, and the idle sample is noisy on a shared machine)
  at a planned utilisation ``U``::

      cores(c)        = R/60 * c / U
      web replicas    = ceil(R/60 * c_web / (U * gunicorn_workers))
      worker replicas = ceil(R/60 * c_worker / (U * concurrency))

  That holds when the processes are busy only while on the CPU. When the
  cluster queued on its processes instead (they wait on PostgreSQL and on the
  async order task), Little's law scales the process slots with the rate:
  ``slots(R) = slots_now * R / sustained_now``; the model reports both and
  takes the larger.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from pretix_cluster.loadtest.summary import LoadSummary

UTILISATION = 0.7  # planned CPU utilisation: headroom for peaks and a failed node
# Host CPU share from which the machine itself is the limit. Below 100 %: the 2-s samples
# average out bursts in which every core was taken and requests waited for one.
HOST_BUSY = 0.85
SCALED_OUT = ("web", "worker")  # components whose replicas the model sizes


def cpu_in_window(
    samples: list[tuple[float, dict[str, float]]], t0: float, t1: float
) -> dict[str, float]:
    """CPU seconds per component between absolute times t0 and t1 (linear interpolation)."""
    if len(samples) < 2 or t1 <= t0:
        return {}
    times = [t for t, _ in samples]
    components = sorted({c for _, d in samples for c in d})
    return {
        c: max(0.0, _at(samples, times, t1, c) - _at(samples, times, t0, c)) for c in components
    }


def _at(
    samples: list[tuple[float, dict[str, float]]], times: list[float], t: float, c: str
) -> float:
    i = bisect.bisect_left(times, t)
    if i <= 0:
        return samples[0][1].get(c, 0.0)
    if i >= len(samples):
        return samples[-1][1].get(c, 0.0)
    (ta, a), (tb, b) = samples[i - 1], samples[i]
    va, vb = a.get(c, 0.0), b.get(c, 0.0)
    return va + (vb - va) * (t - ta) / (tb - ta) if tb > ta else vb


def _series(samples: dict[str, Any], key: str) -> list[tuple[float, dict[str, float]]]:
    """One of samples.json's series as (time, {name: cumulative CPU-s}); scalars named by key."""
    return [(t, v if isinstance(v, dict) else {key: v}) for t, v in samples.get(key, [])]


def _cores(series: list[tuple[float, dict[str, float]]], t0: float, t1: float) -> dict[str, float]:
    return {c: round(s / (t1 - t0), 3) for c, s in cpu_in_window(series, t0, t1).items()}


def phase_rows(summary: LoadSummary, samples: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per phase: target, buyers, completed/min, failure rate, p95, the buyers who waited in
    line and their wait's p95, and CPU cores by component.

    Also the cores the whole host and the load generator were busy with in the window
    (None for runs recorded before the host was sampled).
    """
    rows = []
    samples = samples or {}
    series = {k: _series(samples, k) for k in ("cluster", "generator", "host")}
    t_start = samples.get("t_start")
    for p in summary.throughput.phases:
        a, b = p.window_s
        cores: dict[str, float] = {}
        whole: dict[str, float | None] = {"host": None, "generator": None}
        if t_start is not None and b > a:
            cores = _cores(series["cluster"], t_start + a, t_start + b)
            for key in whole:
                whole[key] = _cores(series[key], t_start + a, t_start + b).get(key)
        rows.append(
            {
                "phase": p.phase,
                "multiplier": p.multiplier,
                "target_per_min": p.target_per_min,
                "buyers": p.buyers,
                "steady": p.steady,
                "completed_per_min": p.completed_per_min,
                "failure_rate": p.failure_rate,
                "p95_s": p.purchase_s.p95,
                "waited": p.waited,
                "queue_p95_s": p.queue_s.p95 if p.queue_s else None,
                "within_budget": p.within_budget,
                "window_s": list(p.window_s),
                "settle_s": p.settle_s,
                "cores_by_component": cores,
                "host_cores_busy": whole["host"],
                "generator_cores": whole["generator"],
            }
        )
    return rows


def system_figures(
    summary: LoadSummary, samples: dict[str, Any] | None, host_cores: int
) -> dict[str, Any]:
    """One run (a system and a scenario) reduced to what the bench compares."""
    cpu = summary.cpu
    sustained = summary.throughput.sustained
    phases = phase_rows(summary, samples)
    return {
        "scenario": summary.run.scenario,
        "stack": summary.run.stack,
        "out": summary.run.out,
        "completed": summary.purchases.completed,
        "failure_rate": summary.purchases.failure_rate_excluding_sold_out,
        "sustained_per_min": sustained.completed_per_min if sustained else None,
        "sustained_phase": sustained.phase if sustained else None,
        "sustained_p95_s": sustained.p95_purchase_s if sustained else None,
        "p95_s": summary.latency_s.purchase.p95,
        "waited": summary.queue.buyers_waited if summary.queue else 0,
        "queue_p95_s": summary.queue.wait_s.p95 if summary.queue else None,
        "phases": phases,
        "overload": overload_hold({"phases": phases}),
        "cpu_s_per_purchase": {
            c: v.cpu_s_per_purchase for c, v in cpu.cluster_by_component.items()
        },
        "cpu_s_per_purchase_total": cpu.cluster_cpu_s_per_purchase,
        "cores_avg": cpu.cluster_cores_avg,
        "generator_cores_avg": cpu.generator_cores_avg,
        "host_cores": host_cores,
        "accounting_ok": summary.accounting.ok if summary.accounting else None,
        "warnings": list(summary.warnings),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


def compare(baseline: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """Cluster / baseline for one scenario: sustained rate, p95 at a common load, per phase."""
    by_name = {p["phase"]: p for p in baseline["phases"]}
    phases = []
    common = None
    for c in cluster["phases"]:
        b = by_name.get(c["phase"])
        if b is None:
            continue
        phases.append(
            {
                "phase": c["phase"],
                "completed_per_min": ratio(c["completed_per_min"], b["completed_per_min"]),
                "p95_s": ratio(c["p95_s"], b["p95_s"]),
            }
        )
        if c["within_budget"] and b["within_budget"]:
            common = (c, b)
    return {
        "sustained_per_min": ratio(cluster["sustained_per_min"], baseline["sustained_per_min"]),
        "p95_phase": common[0]["phase"] if common else None,
        "p95_s": ratio(common[0]["p95_s"], common[1]["p95_s"]) if common else None,
        "phases": phases,
    }


def overload_hold(figures: dict[str, Any]) -> dict[str, Any] | None:
    """The heaviest phase's completions/min against the best steady phase's (1.0: held).

    None when the heaviest phase had no steady window (too short for its purchase time).
    """
    steady = [p for p in figures["phases"] if p["steady"] and p["completed_per_min"]]
    heaviest = max(figures["phases"], key=lambda p: p["multiplier"], default=None)
    if not steady or heaviest is None or heaviest not in steady:
        return None
    best = max(steady, key=lambda p: p["completed_per_min"])
    return {
        "phase": heaviest["phase"],
        "best_phase": best["phase"],
        "ratio": ratio(heaviest["completed_per_min"], best["completed_per_min"]),
        "p95_s": heaviest["p95_s"],
    }


def component_limits(spec: Any, host_cores: int) -> dict[str, float]:
    """Cores each scaled-out component can use at most (one per Python process)."""
    return {
        "web": float(min(host_cores, spec.web.replicas * spec.web.gunicorn_workers)),
        "worker": float(min(host_cores, spec.worker.replicas * spec.worker.concurrency)),
    }


def saturation(figures: dict[str, Any], spec: Any, host_cores: int) -> dict[str, Any] | None:
    """What limits the cluster at its heaviest steady phase with CPU figures: the host first.

    The host's busy cores (all processes: cluster, load generator, Docker, kernel)
    decide whether the machine is the limit; only when it is not does a component
    that filled its process pool count as the bottleneck.
    """
    measured = [p for p in figures["phases"] if p["steady"] and p["cores_by_component"]]
    if not measured:
        return None
    phase = max(measured, key=lambda p: p["multiplier"])
    cores = phase["cores_by_component"]
    total = sum(cores.values())
    limits = component_limits(spec, host_cores)
    rows = {
        c: {
            "cores": round(v, 3),
            "share": round(v / total, 3) if total else None,
            "limit_cores": limits.get(c, float(host_cores)),
            "utilisation": round(v / limits.get(c, float(host_cores)), 3),
        }
        for c, v in sorted(cores.items(), key=lambda kv: -kv[1])
    }
    generator = phase.get("generator_cores")
    if generator is None:
        generator = figures["generator_cores_avg"]
    busy = phase.get("host_cores_busy")
    if busy is None:  # recorded before the host was sampled: cluster and generator only
        busy = total + generator
    host_busy = busy / host_cores
    by_utilisation = max(rows, key=lambda c: rows[c]["utilisation"])
    by_share = max(rows, key=lambda c: rows[c]["cores"])
    host_bound = host_busy >= HOST_BUSY
    first = "host" if host_bound else by_utilisation
    other = max(0.0, busy - total - generator)
    host = (
        f"the host's {host_cores} cores were {host_busy:.0%} busy ({busy:.2f}: cluster "
        f"{total:.2f}, load generator {generator:.2f}, other {other:.2f})"
    )
    why = (
        f"{host}: the machine is the limit; of the cluster, {by_share} used the most "
        f"({rows[by_share]['cores']:.2f} cores, {rows[by_share]['share']:.0%})"
        if host_bound
        else f"{host}; {by_utilisation} used {rows[by_utilisation]['utilisation']:.0%} of the "
        f"{rows[by_utilisation]['limit_cores']:g} cores its processes can use"
    )
    return {
        "phase": phase["phase"],
        "components": rows,
        "host_cores_busy": round(busy, 3),
        "host_busy": round(host_busy, 3),
        "host_bound": host_bound,
        "largest": by_share,
        "first": first,
        "why": why,
    }


def capacity_model(
    figures: dict[str, Any], spec: Any, rate_per_min: float, utilisation: float = UTILISATION
) -> dict[str, Any]:
    """Cores and web/worker replicas for ``rate_per_min`` purchases/min (see the module doc)."""
    per_s = rate_per_min / 60
    cpu = {c: v for c, v in figures["cpu_s_per_purchase"].items() if v is not None}
    cores = {c: round(per_s * v / utilisation, 2) for c, v in cpu.items()}
    slots = {"web": spec.web.gunicorn_workers, "worker": spec.worker.concurrency}
    now = {
        "web": spec.web.replicas * spec.web.gunicorn_workers,
        "worker": spec.worker.replicas * spec.worker.concurrency,
    }
    sustained = figures["sustained_per_min"]
    replicas: dict[str, dict[str, Any]] = {}
    lines = [
        f"R = {rate_per_min:g} purchases/min = {per_s:.2f}/s; planned utilisation U = "
        f"{utilisation:g}"
    ]
    for c in SCALED_OUT:
        if c not in cpu:
            continue
        by_cpu = math.ceil(per_s * cpu[c] / (utilisation * slots[c]))
        by_slots = math.ceil(now[c] * rate_per_min / sustained / slots[c]) if sustained else None
        replicas[c] = {
            "by_cpu": by_cpu,
            "by_process_slots": by_slots,
            "replicas": max(by_cpu, by_slots or 0),
            "processes_per_replica": slots[c],
        }
        lines.append(
            f"{c}: {per_s:.2f}/s x {cpu[c]:.4f} CPU-s / ({utilisation:g} x {slots[c]} processes) "
            f"= {per_s * cpu[c] / (utilisation * slots[c]):.2f} -> {by_cpu} replicas by CPU"
            + (
                f"; {now[c]} processes x {rate_per_min:g} / {sustained:g} sustained / {slots[c]} "
                f"= {now[c] * rate_per_min / sustained / slots[c]:.2f} -> {by_slots} by slots"
                if by_slots
                else ""
            )
        )
    for c, v in cores.items():
        lines.append(f"{c}: {per_s:.2f}/s x {cpu[c]:.4f} CPU-s / {utilisation:g} = {v:.2f} cores")
    total = round(sum(cores.values()), 2)
    lines.append(f"total: {total:.2f} cores, load generator not included")
    return {
        "rate_per_min": rate_per_min,
        "utilisation": utilisation,
        "cpu_s_per_purchase": cpu,
        "cores_by_component": cores,
        "cores_total": total,
        "replicas": replicas,
        "arithmetic": lines,
    }
