"""`pretix-cluster bench`: the Typer command (mounted by the main CLI as a sub-app callback).

Exit codes: 0 when every run ran and its accounting held, 1 otherwise, 2 for
operator errors (:class:`~pretix_cluster.errors.UserError`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pretix_cluster.bench import report
from pretix_cluster.bench.runner import CAPACITY_TARGET, BenchOptions, run_bench
from pretix_cluster.bench.sweep import parse_cores
from pretix_cluster.cli_options import DEFAULT_SPEC, SpecOption
from pretix_cluster.cluster import Cluster
from pretix_cluster.loadtest.cli import parse_duration

app = typer.Typer(add_completion=False, help="Baseline vs cluster under the same load.")
console = Console(stderr=True, log_path=False)
out = Console()


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


@app.callback(invoke_without_command=True)
def bench(
    spec_file: SpecOption = DEFAULT_SPEC,
    target: Annotated[
        float | None,
        typer.Option(help="purchases/min at 1x (default: the spec's bench.target)"),
    ] = None,
    duration: Annotated[
        str, typer.Option(help="length of each load run (its four phases), e.g. 8m")
    ] = "5m",
    scenarios: Annotated[str, typer.Option(help="shop and/or api, comma-separated")] = "shop",
    systems: Annotated[
        str, typer.Option(help="baseline and/or cluster, comma-separated")
    ] = "baseline,cluster",
    max_users: Annotated[int, typer.Option(help="never more concurrent buyers than this")] = 500,
    isolate: Annotated[
        bool, typer.Option(help="pause the stack that is not measured (scale it to 0)")
    ] = True,
    purge_baseline: Annotated[
        bool, typer.Option(help="afterwards remove the baseline's stack, volumes and secrets")
    ] = False,
    capacity: Annotated[
        float, typer.Option(help="purchases/min the capacity model sizes the cluster for")
    ] = CAPACITY_TARGET,
    results: Annotated[
        Path | None, typer.Option("--out", help="results folder (default results/bench-<stamp>/)")
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            help="sample web and worker with py-spy (flame graphs) and PostgreSQL's "
            "statements during each run's heaviest phase below overload"
        ),
    ] = False,
    lock_hold: Annotated[
        str,
        typer.Option(
            help="afterwards, how long pretix's quota lock is held: a steady run of this "
            "length (e.g. 90s) per synchronous_commit mode on the cluster; 0: not measured"
        ),
    ] = "0",
    cores: Annotated[
        str,
        typer.Option(
            help="afterwards, the capacity model's check: the cluster limited to these core "
            "counts (e.g. 0.5,1,1.5,2), predicted vs measured purchases/min"
        ),
    ] = "",
    sweep_duration: Annotated[
        str, typer.Option(help="length of each run of the core sweep")
    ] = "3m",
    pace: Annotated[
        float | None,
        typer.Option(
            help="seconds between one buyer's purchase starts, for every run (default: "
            "the first run's calibration); give an earlier run's to offer its load again"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print bench.json")] = False,
) -> None:
    """Run the same load against a single-node baseline and the cluster, back to back.

    Both stacks are brought up as needed.
    """
    opts = BenchOptions(
        target=target,
        duration=parse_duration(duration),
        scenarios=_names(scenarios),
        systems=_names(systems),
        max_users=max_users,
        isolate=isolate,
        purge_baseline=purge_baseline,
        out=results,
        capacity_target=capacity,
        profile=profile,
        lock_hold=parse_duration(lock_hold),
        cores=tuple(parse_cores(cores)) if cores else (),
        sweep_duration=parse_duration(sweep_duration),
        pace=pace,
    )
    doc, folder = run_bench(Cluster.from_file(spec_file), opts, console)
    report.write(doc, folder)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        report.print_tables(doc, out)
        out.print(f"bench: {folder / 'bench.md'}  {folder / 'bench.html'}  {folder / 'bench.json'}")
    accounting = [f["accounting_ok"] for r in doc["runs"].values() for f in r.values()]
    if doc["errors"] or not all(accounting):
        raise typer.Exit(1)
