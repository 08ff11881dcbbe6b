"""Results of a chaos run: one JSON per scenario and an HTML table of all of them.

Plain HTML and CSS in one file, no external assets: it opens anywhere, offline.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

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


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; }
td.l { text-align: left; }
tr.fail td { background: #fde8e8; }
.pass { color: #176117; font-weight: bold; }
.FAIL { color: #a11; font-weight: bold; }
code { font-size: 12px; }
"""


def render_html(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in COLUMNS)
    body = []
    for figures in results:
        cells = row(figures)
        tds = []
        for _, key in COLUMNS:
            value = html.escape(cells[key])
            cls = ' class="l"' if key in ("title", "target", "signal") else ""
            if key == "verdict":
                value = f'<span class="{value}">{value}</span>'
            tds.append(f"<td{cls}>{value}</td>")
        fail = "" if cells["verdict"] == "pass" else ' class="fail"'
        body.append(f"<tr{fail}>{''.join(tds)}</tr>")
    details = "".join(_details(f) for f in results)
    info = html.escape(", ".join(f"{k}: {v}" for k, v in meta.items()))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pretix-cluster chaos</title>
<style>{CSS}</style></head><body>
<h1>pretix-cluster chaos</h1>
<p>{info}</p>
<p>Times are seconds after the fault. <b>detect</b>: first sign that a mechanism of the
cluster noticed (HAProxy marked a server down, Patroni's leader or members changed,
Sentinel flagged or replaced the master, Swarm's task stopped running, the health check
through nginx failed). <b>repaired</b>: the role is served again (new primary/master
routed by every HAProxy, or the service back at its replicas). <b>write window</b>: last
purchase completed before the fault to the first whose order was placed after it
(buyers' ledger). <b>lost</b>: confirmed to a buyer, not in the database.
<b>phantom</b>: in the database although the buyer saw an error (not a loss).
<b>rejoined</b>: the failed node back in its place by itself. <b>healthy</b>:
<code>pretix-cluster status</code> healthy again.</p>
<table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>
{details}
</body></html>
"""


def _details(figures: dict[str, Any]) -> str:
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
    if figures.get("rejoin_evidence") is not None:
        lines = figures["rejoin_evidence"]
        items.append("pg_rewind in the old primary's log: " + (" | ".join(lines) or "none"))
    if reasons:
        items.append("fails because: " + "; ".join(reasons))
    if figures.get("load_report"):
        items.append(f"load report: {figures['load_report']}")
    lis = "".join(f"<li>{html.escape(i)}</li>" for i in items)
    title = html.escape(f"{figures['scenario']}. {figures['title']}")
    return f"<h3>{title}</h3><ul>{lis}</ul>"


def write_report(out: Path, results: list[dict[str, Any]], meta: dict[str, Any]) -> Path:
    meta = {"written": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"), **meta}
    path = out / "report.html"
    path.write_text(render_html(results, meta))
    (out / "summary.json").write_text(
        json.dumps({"meta": meta, "rows": [row(f) for f in results]}, indent=2) + "\n"
    )
    return path
