"""The bench's tables, once as data, then as Markdown, HTML (a template) and rich tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pretix_cluster import reports
from pretix_cluster.bench import locks
from pretix_cluster.reports import svgplot

Tables = list[tuple[str, list[str], list[list[str]]]]


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f} %"


def tables(doc: dict[str, Any]) -> Tables:
    """(title, header, rows) for every table of the bench."""
    out: Tables = []
    runs = doc["runs"]
    for scenario in sorted({s for r in runs.values() for s in r}):
        rows = []
        base = runs.get("baseline", {}).get(scenario)
        clus = runs.get("cluster", {}).get(scenario)
        cmp_ = doc["comparison"].get(scenario, {})
        ratios = {p["phase"]: p for p in cmp_.get("phases", [])}
        names = [p["phase"] for p in (clus or base)["phases"]]
        for name in names:
            b = _phase(base, name)
            c = _phase(clus, name)
            r = ratios.get(name, {})
            rows.append(
                [
                    name,
                    _f((c or b or {}).get("target_per_min"), "{:g}"),
                    _f(b and b["completed_per_min"]),
                    _pct(b and b["failure_rate"]),
                    _f(b and b["p95_s"], "{:.2f}") + _wait(b),
                    _f(c and c["completed_per_min"]),
                    _pct(c and c["failure_rate"]),
                    _f(c and c["p95_s"], "{:.2f}") + _wait(c),
                    _f(r.get("completed_per_min"), "{:.2f}"),
                    _f(r.get("p95_s"), "{:.2f}"),
                ]
            )
        rows.append(
            [
                "sustained (≤1 % failures)",
                "",
                _f(base and base["sustained_per_min"]) + _at(base),
                "",
                _f(base and base["sustained_p95_s"], "{:.2f}"),
                _f(clus and clus["sustained_per_min"]) + _at(clus),
                "",
                _f(clus and clus["sustained_p95_s"], "{:.2f}"),
                _f(cmp_.get("sustained_per_min"), "{:.2f}"),
                _f(cmp_.get("p95_s"), "{:.2f}")
                + (f" (at {cmp_['p95_phase']})" if cmp_.get("p95_phase") else ""),
            ]
        )
        head = ["phase", "target/min", "base /min", "base fail", "base p95 s"]
        head += ["cluster /min", "cluster fail", "cluster p95 s", "ratio /min", "ratio p95"]
        out.append((f"{scenario} flow: baseline vs cluster", head, rows))

    flows = [
        [
            f"{system} {scenario}",
            _f(f["sustained_per_min"]) + _at(f),
            _f(f["sustained_p95_s"], "{:.2f}"),
            _f(f["cpu_s_per_purchase_total"], "{:.3f}"),
            _f(f["cores_avg"], "{:.2f}"),
            _f(f["generator_cores_avg"], "{:.2f}"),
            {True: "ok", False: "FAILED"}.get(f["accounting_ok"], "-"),
        ]
        for system, by_scenario in runs.items()
        for scenario, f in by_scenario.items()
    ]
    head = ["run", "sustained /min", "p95 s", "CPU-s/purchase", "cores avg", "generator cores"]
    out.append(("shop flow vs API flow", [*head, "accounting"], flows))

    components = sorted(
        {c for r in runs.values() for f in r.values() for c in f["cpu_s_per_purchase"]}
    )
    columns = [(s, sc) for s, r in runs.items() for sc in r]
    rows = [
        [c, *(_f(runs[s][sc]["cpu_s_per_purchase"].get(c), "{:.4f}") for s, sc in columns)]
        for c in components
    ]
    out.append(
        (
            "CPU-seconds per completed purchase by component",
            ["component", *(f"{s} {sc}" for s, sc in columns)],
            rows,
        )
    )

    sat = doc.get("saturation")
    if sat:
        rows = [
            [
                c,
                _f(v["cores"], "{:.2f}"),
                _pct(v["share"]),
                _f(v["limit_cores"], "{:g}"),
                _pct(v["utilisation"]),
            ]
            for c, v in sat["components"].items()
        ]
        out.append(
            (
                f"cluster at {sat['phase']}: first to saturate: {sat['first']} ({sat['why']})",
                ["component", "cores", "share", "can use cores", "utilisation"],
                rows,
            )
        )
    cap = doc.get("capacity")
    if cap:
        rows = [
            [
                c,
                _f(cap["cpu_s_per_purchase"][c], "{:.4f}"),
                _f(cap["cores_by_component"][c], "{:.2f}"),
                _replicas(cap["replicas"].get(c)),
            ]
            for c in cap["cores_by_component"]
        ]
        rows.append(["total", "", _f(cap["cores_total"], "{:.2f}"), ""])
        out.append(
            (
                f"capacity for {cap['rate_per_min']:g} purchases/min "
                f"(utilisation {cap['utilisation']:g})",
                ["component", "CPU-s/purchase", "cores", "replicas (by CPU, by process slots)"],
                rows,
            )
        )
    out += _profile_tables(runs)
    sw = doc.get("sweep")
    if sw:
        rows = [
            [
                _f(p["cores"], "{:g}"),
                _f(p["predicted_per_min"]),
                _f(p["measured_per_min"]) + (f" ({p['phase']})" if p["phase"] else ""),
                _f(p["error"], "{:+.0%}"),
                _f(p["p95_s"], "{:.1f}"),
            ]
            for p in sw["points"]
        ]
        head = ["cores", "predicted /min", "measured /min", "error", "p95 s"]
        out.append(("capacity model: the cluster limited to fewer cores", head, rows))
    holds = doc.get("lock_hold") or []
    if holds:
        rows = [
            [
                h["mode"],
                str(h["exclusive_holds"]),
                _f(h["exclusive_mean_ms"]),
                _f(h["exclusive_p95_ms"]),
                str(h["shared_holds"]),
                _f(h["shared_mean_ms"]),
                _f(h["shared_p95_ms"]),
                str(h["waits"]),
                _f(h["wait_mean_ms"]),
                _f(h["ceiling_per_min"], "{:.0f}"),
            ]
            for h in holds
        ]
        head = [
            "synchronous_commit",
            "exclusive holds",
            "mean ms",
            "p95 ms",
            "shared holds",
            "mean ms",
            "p95 ms",
            "waits",
            "wait mean ms",
            "ceiling /min",
        ]
        out.append(
            (
                f"quota lock holds (sampled every {holds[0]['sample_interval_ms']:g} ms): "
                "exclusive by cart adds, shared by checkouts, and the purchases/min one quota "
                "admits",
                head,
                rows,
            )
        )
    return out


def _profile_tables(runs: dict[str, dict[str, Any]]) -> Tables:
    """Per profiled run: samples by view and by library per container, then the statements."""
    out: Tables = []
    for system, by_scenario in runs.items():
        for scenario, figures in by_scenario.items():
            prof = figures.get("profile")
            if not prof:
                continue
            where = f"{system} {scenario} at {prof['phase']} ({prof['seconds']:g} s)"
            for c in prof["containers"]:
                for key, label in (("by_view", "view or task"), ("by_library", "library")):
                    rows = [[name, _pct(share)] for name, share in c[key]]
                    title = f"profile {where}: {c['name']} samples by {label} ({c['samples']})"
                    out.append((title, [label, "share of samples"], rows))
            rows = [
                [str(st["calls"]), _f(st["total_ms"]), _f(st["mean_ms"], "{:.3f}"), st["query"]]
                for st in prof["statements"]
            ]
            if rows:
                head = ["calls", "total ms", "mean ms", "statement"]
                out.append((f"profile {where}: PostgreSQL statements by total time", head, rows))
    return out


def _sweep_chart(sw: dict[str, Any]) -> svgplot.LineChart:
    """Predicted and measured purchases/min against the cores the cluster had."""
    points = sw["points"]
    return svgplot.line_chart(
        "capacity model: purchases/min by cores, predicted and measured",
        [
            svgplot.Series("predicted", [(p["cores"], p["predicted_per_min"]) for p in points]),
            svgplot.Series("measured", [(p["cores"], p["measured_per_min"]) for p in points]),
        ],
        y_label="purchases/min",
        x_label="cores",
        x_range=(0.0, max(p["cores"] for p in points)),
    )


def _flamegraphs(doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(label, path relative to bench.html) of every flame graph."""
    return tuple(
        (f"{system} {scenario} {c['name']}", f"{system}-{scenario}/{c['flamegraph']}")
        for system, by_scenario in doc["runs"].items()
        for scenario, figures in by_scenario.items()
        for c in (figures.get("profile") or {}).get("containers", [])
    )


def _replicas(r: dict[str, Any] | None) -> str:
    if not r:
        return ""
    return f"{r['replicas']} ({r['by_cpu']}, {_f(r['by_process_slots'], '{}')})"


def _phase(figures: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not figures:
        return None
    return next((p for p in figures["phases"] if p["phase"] == name), None)


def _wait(phase: dict[str, Any] | None) -> str:
    """A phase's wait in line next to its purchase p95, when the waiting room held anyone."""
    if not phase or not phase["waited"]:
        return ""
    return f" (+ wait p95 {phase['queue_p95_s']:.1f} s, {phase['waited']} waited)"


def _at(figures: dict[str, Any] | None) -> str:
    return f" ({figures['sustained_phase']})" if figures and figures["sustained_phase"] else ""


def answer(doc: dict[str, Any]) -> list[str]:
    """The bench's answer first: the ratios, what held at overload, what limits, cores needed."""
    lines = []
    for scenario, cmp_ in sorted(doc["comparison"].items()):
        base, clus = doc["runs"]["baseline"][scenario], doc["runs"]["cluster"][scenario]
        rate = _f(cmp_["sustained_per_min"], "{:.2f}")
        lines.append(
            f"{scenario}: the cluster sustained {_f(clus['sustained_per_min'])} purchases/min, "
            f"the baseline {_f(base['sustained_per_min'])}: {rate}x"
            f" (goal: at least 1.0x); p95 {_f(cmp_['p95_s'], '{:.2f}')}x the baseline's"
            + (f" at {cmp_['p95_phase']}" if cmp_.get("p95_phase") else "")
            + " (goal: at most 1.2x)."
        )
    for system, by_scenario in doc["runs"].items():
        for scenario, f in by_scenario.items():
            hold = f.get("overload")
            lines.append(
                f"{system} {scenario} at overload: "
                + (
                    f"{hold['phase']} completed {_f(hold['ratio'], '{:.0%}')} of the best phase's "
                    f"rate ({hold['best_phase']}), p95 {_f(hold['p95_s'], '{:.1f}')} s "
                    "(goal: at least 95 %)."
                    if hold
                    else "no steady window (the phase was shorter than its purchase time: "
                    "a longer --duration)."
                )
            )
            if f["waited"]:
                lines.append(
                    f"{system} {scenario}: the waiting room held {f['waited']} buyers (wait p95 "
                    f"{f['queue_p95_s']:.1f} s); purchase times and their ratios are the "
                    "admitted buyers', without that wait."
                )
    sat = doc.get("saturation")
    if sat:
        lines.append(f"Limit at {sat['phase']}: {sat['why']}.")
    runs = [f for r in doc["runs"].values() for f in r.values()]
    profiled = sorted({f["profile"]["phase"] for f in runs if f.get("profile")})
    if profiled:
        lines.append(
            f"Profiled: py-spy ran during {', '.join(profiled)} and took CPU from it (counted as "
            "other); take the ratios from a run without --profile."
        )
    for h in doc.get("lock_hold") or []:
        if h["mode"] == "on" and h["ceiling_per_min"]:
            verdict = "above" if h["ceiling_per_min"] >= locks.CUSTOMER_RATE else "BELOW"
            lines.append(
                f"One quota admits at least {h['ceiling_per_min']:.0f} purchases/min (its lock "
                f"held {h['purchase_hold_ms']:.1f} ms per purchase, synchronous replication on): "
                f"{verdict} the customer's {locks.CUSTOMER_RATE:g}/min."
            )
    sw = doc.get("sweep")
    if sw and sw["model"]:
        m = sw["model"]
        lines.append(
            f"Capacity model (60 x (cores - {m['idle_cores']:g} idle) / {m['cpu_s_per_purchase']:g}"
            f" CPU-s per purchase): {'within' if sw['holds'] else 'NOT within'} "
            f"{sw['within']:.0%} at every core count; throughput per core at the fewest cores "
            f"vs the most: {_f(sw['linearity'], '{:.2f}')} (1.00: linear)."
        )
    cap = doc.get("capacity")
    if cap:
        lines.append(
            f"Cores for {cap['rate_per_min']:g} purchases/min at {cap['utilisation']:.0%} "
            f"utilisation: {cap['cores_total']:.1f} (arithmetic below)."
        )
    return lines


def _intro(doc: dict[str, Any]) -> list[str]:
    lines = [
        f"Phases 0.5x/1x/2x/10x of {doc['target_per_min']:g} purchases/min, "
        f"{doc['duration_s']:.0f} s per run, on {doc['host_cores']} cores"
        + (", the other stack paused while one is measured." if doc["isolated"] else "."),
        "Cluster: " + "; ".join(f"{k} {v}" for k, v in doc["cluster_shape"].items()) + ".",
        "Baseline: " + "; ".join(f"{k} {v}" for k, v in doc["baseline_shape"].items()) + ".",
        *(f"Differs: {d}." for d in doc.get("differences", [])),
    ]
    settled = doc.get("settled") or {}
    if settled:
        lines.append(
            "Measured once settled after its start: "
            + "; ".join(
                f"{system} after {s['waited_s']:.0f} s ({s['busy_cores']:g} cores busy"
                + ("" if s["quiet"] else ", NOT quiet")
                + ")"
                for system, s in settled.items()
            )
            + "."
        )
    return lines


def markdown(doc: dict[str, Any]) -> str:
    lines = ["# pretix-cluster bench", "", *(f"- {x}" for x in answer(doc)), ""]
    lines += [*(f"{x}  " for x in _intro(doc)), ""]
    for title, head, rows in tables(doc):
        lines += [f"## {title}", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + "|".join("---" for _ in head) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    if doc.get("capacity"):
        lines += ["## capacity arithmetic", "", "```", *doc["capacity"]["arithmetic"], "```", ""]
    lines += [f"- flame graph {label}: {path}" for label, path in _flamegraphs(doc)]
    lines += _warnings(doc)
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class BenchReport:
    """What bench.html shows: the same tables as bench.md, and links to each run's report."""

    answer: tuple[str, ...]
    intro: tuple[str, ...]
    tables: Tables
    arithmetic: tuple[str, ...]
    warnings: tuple[str, ...]
    runs: tuple[tuple[str, str], ...]  # (system, scenario): the folder of its load-test report
    flamegraphs: tuple[tuple[str, str], ...] = ()  # (label, SVG path) with --profile
    charts: tuple[svgplot.LineChart, ...] = ()


def html(doc: dict[str, Any]) -> str:
    view = BenchReport(
        answer=tuple(answer(doc)),
        intro=tuple(_intro(doc)),
        tables=tables(doc),
        arithmetic=tuple((doc.get("capacity") or {}).get("arithmetic") or ()),
        warnings=tuple(_warnings(doc)),
        runs=tuple((system, sc) for system, r in doc["runs"].items() for sc in r),
        flamegraphs=_flamegraphs(doc),
        charts=(_sweep_chart(doc["sweep"]),) if doc.get("sweep") else (),
    )
    return reports.render("bench.html.j2", report=view)


def _warnings(doc: dict[str, Any]) -> list[str]:
    own = [f"run failed: {e}" for e in doc.get("errors", [])] + doc.get("warnings", [])
    return own + [
        f"warning ({system} {scenario}): {w}"
        for system, r in doc["runs"].items()
        for scenario, f in r.items()
        for w in f["warnings"]
    ]


def write(doc: dict[str, Any], folder: Path) -> None:
    (folder / "bench.md").write_text(markdown(doc))
    (folder / "bench.html").write_text(html(doc))


def print_tables(doc: dict[str, Any], console: Console) -> None:
    for line in answer(doc):
        console.print(f"[bold]{line}[/]")
    for line in _intro(doc):
        console.print(line)
    for title, head, rows in tables(doc):
        t = Table(title=title, title_justify="left")
        for i, h in enumerate(head):
            t.add_column(h, justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*row)
        console.print(t)
    if doc.get("capacity"):
        for line in doc["capacity"]["arithmetic"]:
            console.print(f"  {line}")
    for w in _warnings(doc):
        console.print(f"[yellow]{w}[/]")
