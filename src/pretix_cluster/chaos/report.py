"""Results of a chaos run: one JSON per scenario and an HTML table of all of them.

The HTML is the shared report layout (:mod:`pretix_cluster.reports`): one file,
no external assets, it opens anywhere, offline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

from pretix_cluster import reports
from pretix_cluster.chaos.soak_analysis import SoakResult

COLUMNS = (
    ("#", "scenario"),
    ("scenario", "title"),
    ("target", "target"),
    ("detect s", "detect"),
    ("first signal", "signal"),
    ("repaired s", "repair"),
    ("write window s", "window"),
    ("failed in window", "failed_window"),
    ("lost", "lost"),
    ("oversold", "oversold"),
    ("duplicated", "duplicated"),
    ("phantom", "phantom"),
    ("rejoined s", "rejoin"),
    ("healthy s", "healthy"),
    ("verdict", "verdict"),
)


def scenario_file(out: Path, figures: dict[str, Any]) -> Path:
    return out / f"{figures['scenario']:02d}-{figures['name']}.json"


def write_scenario(out: Path, figures: dict[str, Any]) -> Path:
    path = scenario_file(out, figures)
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return path


def _n(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def row(figures: dict[str, Any]) -> dict[str, str]:
    """The table's cells for one scenario (shared by the terminal and the HTML)."""
    integ = figures.get("integrity") or {}
    seen = figures.get("timeline") or {}
    window = figures.get("window") or {}
    target = figures.get("target") or {}
    passed = (figures.get("verdict") or {}).get("passed")
    checked = integ.get("checked")
    return {
        "scenario": str(figures["scenario"]),
        "title": figures["title"],
        "target": f"{target.get('node', '-')} ({target.get('role', '-')})" if target else "-",
        "detect": _n(seen.get("detect_s")),
        "signal": seen.get("first_signal") or "-",
        "repair": _n(seen.get("repair_s")),
        "window": _n(window.get("window_s")),
        "failed_window": _n(window.get("failed_in_window")),
        "lost": _n(integ.get("lost")) if checked else "?",
        "oversold": _n(integ.get("oversold")) if checked else "?",
        "duplicated": _n(integ.get("duplicated")) if checked else "?",
        "phantom": _n(integ.get("phantom_unacknowledged", 0) + integ.get("phantom_unknown", 0))
        if checked
        else "?",
        "rejoin": _n(seen.get("rejoin_s")),
        "healthy": _n(figures.get("healthy_s")),
        "verdict": "pass" if passed else "FAIL",
    }


TEXT_COLUMNS = ("title", "target", "signal")  # left-aligned


@dataclasses.dataclass(frozen=True)
class ScenarioLine:
    """One scenario in the report: its table cells, and the notes below the table."""

    cells: dict[str, str]
    passed: bool
    heading: str
    notes: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ChaosReport:
    meta: dict[str, Any]
    scenarios: tuple[ScenarioLine, ...]
    columns: tuple[tuple[str, str], ...] = COLUMNS
    text_columns: tuple[str, ...] = TEXT_COLUMNS


def render_html(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = []
    for figures in results:
        cells = row(figures)
        lines.append(
            ScenarioLine(
                cells=cells,
                passed=cells["verdict"] == "pass",
                heading=f"{figures['scenario']}. {figures['title']}",
                notes=tuple(_notes(figures)),
            )
        )
    return reports.render("chaos.html.j2", report=ChaosReport(meta, tuple(lines)))


def _notes(figures: dict[str, Any]) -> list[str]:
    """The fault, every signal's time, the purchases around the fault, and why it failed."""
    seen = figures.get("timeline") or {}
    signals = ", ".join(
        f"{k} {_n(v)} s" for k, v in (seen.get("signals_s") or {}).items() if v is not None
    )
    window = figures.get("window") or {}
    reasons = (figures.get("verdict") or {}).get("reasons") or []
    items = [
        f"fault: {figures.get('fault', '-')}"
        + {True: " (failover)", False: " (no failover: the same node came back)"}.get(
            seen.get("failover"), ""
        ),
        f"signals: {signals or '-'}",
        f"purchases completed before/after the fault: {window.get('completed_before', '-')}"
        f"/{window.get('completed_after', '-')}, failed after the fault: "
        f"{window.get('failed_after_fault', '-')} {window.get('failed_kinds_after_fault', '')}",
    ]
    if figures.get("completed_while_faulted") is not None:
        items.append(
            f"purchases completed while the fault lasted: {figures['completed_while_faulted']}"
        )
    if figures.get("tasks_replaced") is not None:
        replaced = ", ".join(f"{k} {v}" for k, v in figures["tasks_replaced"].items())
        items.append(f"tasks Swarm replaced during the fault: {replaced}")
    if figures.get("rejoin_evidence") is not None:
        lines = figures["rejoin_evidence"]
        items.append("pg_rewind in the old primary's log: " + (" | ".join(lines) or "none"))
    if reasons:
        items.append("fails because: " + "; ".join(reasons))
    if figures.get("load_report"):
        items.append(f"load report: {figures['load_report']}")
    return items


def write_report(out: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    meta = {"written": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), **meta}
    path = out / "report.html"
    path.write_text(render_html(results, meta))
    (out / "summary.json").write_text(
        json.dumps({"meta": meta, "rows": [row(f) for f in results]}, indent=2) + "\n"
    )
    return path


def render_soak_html(result: SoakResult) -> str:
    written = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return reports.render("soak.html.j2", result=result, meta={"written": written, **result.meta})


def write_soak_report(out: Path, result: SoakResult) -> Path:
    """report.html of a soak, with its figures (soak.json) beside it."""
    (out / "soak.json").write_text(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    path = out / "report.html"
    path.write_text(render_soak_html(result))
    return path
