"""`pretix-cluster loadtest`: the Typer command (mounted by the main CLI).

Mount with ``app.add_typer(loadtest.cli.app, name="loadtest")``: the command is
the sub-app's callback, so it runs as ``pretix-cluster loadtest --target 800``
without a further sub-command. Exit codes: 0 when the accounting holds, 1 when
it does not (lost, phantom or duplicate orders, an oversold quota), 2 for
operator errors (:class:`~pretix_cluster.errors.UserError`).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pretix_cluster.cli_options import DEFAULT_SPEC, SpecOption
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.runner import LoadOptions, run_loadtest
from pretix_cluster.loadtest.summary import LoadSummary

app = typer.Typer(add_completion=False, help="Load-test the cluster with the real purchase flow.")
console = Console(stderr=True, log_path=False)
out = Console()


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``3m``, ``1h30m`` -> seconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise UserError(f"--duration {text!r} is not a duration such as 90, 90s, 3m or 1h30m.")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@app.callback(invoke_without_command=True)
def loadtest(
    spec_file: SpecOption = DEFAULT_SPEC,
    target: Annotated[float, typer.Option(help="purchases per minute at 1x")] = 800.0,
    shape: Annotated[str, typer.Option(help="steady | phases (0.5x,1x,2x,10x) | peak")] = "steady",
    duration: Annotated[str, typer.Option(help="length of the load, e.g. 120, 3m")] = "120s",
    users: Annotated[
        int | None, typer.Option(help="buyers at 1x, instead of deriving them from --target")
    ] = None,
    max_users: Annotated[int, typer.Option(help="never more concurrent buyers than this")] = 500,
    think: Annotated[
        float | None, typer.Option(help="seconds between a buyer's purchases (default: D/2)")
    ] = None,
    scenario: Annotated[str, typer.Option(help="shop (browser-like) | api (REST orders)")] = "shop",
    oversell: Annotated[
        bool, typer.Option(help="a small quota (default 30) and more demand than it")
    ] = False,
    quota: Annotated[int | None, typer.Option(help="quota size of the run's event")] = None,
    results: Annotated[
        Path | None, typer.Option("--out", help="results folder (default results/<timestamp>/)")
    ] = None,
    ui: Annotated[bool, typer.Option(help="Locust's web UI on 127.0.0.1 instead of headless")] = (
        False
    ),
    web_port: Annotated[int, typer.Option(help="port of the web UI")] = 8089,
    processes: Annotated[
        int, typer.Option(help="extra Locust worker processes (distributed mode, forked)")
    ] = 0,
    assets: Annotated[bool, typer.Option(help="load the event page's static assets")] = True,
    keep_live: Annotated[bool, typer.Option(help="leave the run's event on sale afterwards")] = (
        False
    ),
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON summary")] = False,
) -> None:
    """Run the purchase flow under load, then account every order and report the capacity."""
    opts = LoadOptions(
        scenario=scenario,
        shape=shape,
        target=target,
        duration=parse_duration(duration),
        users=users,
        max_users=max_users,
        think=think,
        oversell=oversell,
        quota=quota,
        out=results,
        ui=ui,
        web_port=web_port,
        processes=processes,
        assets=assets,
        keep_live=keep_live,
    )
    result = run_loadtest(Cluster.from_file(spec_file), opts, console)
    if as_json:
        sys.stdout.write(json.dumps(result.summary.to_dict(), indent=2, default=str) + "\n")
    else:
        print_summary(result.summary, result.out)
    if not (result.accounting and result.accounting.ok):
        raise typer.Exit(1)


def _f(x: Any, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def print_summary(summary: LoadSummary, folder: Path) -> None:
    """The headline figures, phases, steps, CPU and accounting on the terminal."""
    pur, thr, lat, cpu = summary.purchases, summary.throughput, summary.latency_s, summary.cpu
    sus = thr.sustained
    out.print(
        f"[bold]{summary.run.scenario} flow, {summary.plan.shape} shape[/]: "
        f"{pur.attempted} attempted, {pur.completed} completed, {pur.failed} failed "
        f"({_f((pur.failure_rate or 0) * 100)} %, {pur.rejected_sold_out} sold out), "
        f"{summary.retries.total} busy retries"
    )
    out.print(
        f"completed/min overall {thr.completed_per_min_overall}, sustained (≤1 % failures) "
        f"{sus.completed_per_min if sus else '-'} in {sus.phase if sus else '-'}; "
        f"purchase p50/p95/p99 {_f(lat.purchase.p50)}/{_f(lat.purchase.p95)}/"
        f"{_f(lat.purchase.p99)} s"
    )
    if summary.queue:
        q = summary.queue
        out.print(
            f"waiting room: {q.buyers_waited} buyers waited, wait p50/p95/max "
            f"{_f(q.wait_s.p50, '{:.1f}')}/{_f(q.wait_s.p95, '{:.1f}')}/"
            f"{_f(q.wait_s.max, '{:.1f}')} s; purchase p95 of the admitted buyers "
            f"{_f(q.admitted_purchase_s.p95)} s without the wait, {_f(q.in_system_s.p95)} s with it"
        )
    t = Table(title="phases", title_justify="left")
    for col in ("phase", "target/min", "buyers", "completed/min", "failures", "p95 s"):
        t.add_column(col, justify="right")
    for p in thr.phases:
        t.add_row(
            p.phase,
            f"{p.target_per_min:g}" + (" (capped)" if p.capped else ""),
            str(p.buyers),
            _f(p.completed_per_min, "{:.1f}"),
            _f(None if p.failure_rate is None else p.failure_rate * 100, "{:.2f} %"),
            _f(p.purchase_s.p95),
        )
    out.print(t)
    t = Table(title="latency per step (s)", title_justify="left")
    for col in ("step", "p50", "p95", "p99"):
        t.add_column(col, justify="right")
    for name, d in [("purchase", lat.purchase), *lat.steps.items()]:
        t.add_row(name, _f(d.p50, "{:.3f}"), _f(d.p95, "{:.3f}"), _f(d.p99, "{:.3f}"))
    out.print(t)
    t = Table(title="CPU-seconds per completed purchase", title_justify="left")
    for col in ("component", "CPU-s", "per purchase", "cores avg"):
        t.add_column(col, justify="right")
    for comp, v in cpu.cluster_by_component.items():
        t.add_row(comp, _f(v.cpu_s), _f(v.cpu_s_per_purchase, "{:.4f}"), _f(v.cores_avg))
    t.add_row(
        "[bold]cluster[/]",
        _f(cpu.cluster_cpu_s),
        _f(cpu.cluster_cpu_s_per_purchase, "{:.4f}"),
        _f(cpu.cluster_cores_avg),
    )
    t.add_row(
        "load generator",
        _f(cpu.generator_cpu_s),
        _f(cpu.generator_cpu_s_per_purchase, "{:.4f}"),
        _f(cpu.generator_cores_avg),
    )
    out.print(t)
    if pur.errors_by_kind:
        out.print(
            "failures by kind: " + ", ".join(f"{k} {v}" for k, v in pur.errors_by_kind.items())
        )
    acc = summary.accounting
    if acc and acc.checked:
        style = "green" if acc.ok else "bold red"
        for line in acc.lines():
            out.print(f"[{style}]{line}[/]")
    elif acc:
        out.print(f"[bold red]{'; '.join(acc.problems)}[/]")
    for warning in summary.warnings:
        out.print(f"[yellow]warning: {warning}[/]")
    out.print(f"report: {folder / 'report.html'}  summary: {folder / 'summary.json'}")
