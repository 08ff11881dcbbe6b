"""`pretix-cluster chaos`: list the scenarios, run one, several or all of them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from pretix_cluster import swarm
from pretix_cluster.chaos import report, soak
from pretix_cluster.chaos.runner import ChaosOptions, reanalyse, run_scenario
from pretix_cluster.chaos.scenarios import SCENARIOS, select
from pretix_cluster.cli_options import DEFAULT_SPEC, SpecOption
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.progress import progress_display

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Break the cluster under a purchase load and prove that no order is lost.",
)
console = Console(stderr=True, log_path=False, soft_wrap=True)
out = Console(soft_wrap=True)


@app.command("list")
def list_scenarios() -> None:
    """The scenarios, by number and name."""
    table = Table(show_header=True, header_style="bold", box=None)
    for column in ("#", "name", "what happens"):
        table.add_column(column)
    for s in SCENARIOS:
        table.add_row(str(s.number), s.name, s.title)
    out.print(table)


@app.command("run")
def run(
    scenarios: Annotated[
        list[str], typer.Argument(help="numbers or names (see `chaos list`), or `all`")
    ],
    spec_file: SpecOption = DEFAULT_SPEC,
    users: Annotated[int, typer.Option(help="concurrent buyers of the steady load")] = 8,
    duration: Annotated[float, typer.Option(help="seconds of load per scenario")] = 150.0,
    fault_at: Annotated[float, typer.Option(help="seconds of load before the fault")] = 40.0,
    recover_timeout: Annotated[
        float, typer.Option(help="seconds after the fault to be rejoined and healthy")
    ] = 240.0,
    results: Annotated[
        Path | None, typer.Option("--out", help="results folder (default results/chaos-<stamp>/)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print every scenario's JSON")] = False,
) -> None:
    """Run scenarios one after the other; exit 1 if any lost, oversold, duplicated or
    did not recover."""
    chosen = select(scenarios, on_lab=swarm.is_remote())
    opts = ChaosOptions(
        users=users, duration=duration, fault_at=fault_at, recover_timeout=recover_timeout
    )
    opts.validate()
    cluster = Cluster.from_file(spec_file)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    folder = (results or Path("results") / f"chaos-{stamp}").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"stack": cluster.stack, "users": users, "duration_s": duration, "fault_at_s": fault_at}
    done: list[dict[str, Any]] = []
    for scenario in chosen:
        console.rule(f"{scenario.number}. {scenario.title}")
        with progress_display(
            f"{scenario.name}: starting", console, _stage, prefix=f"{scenario.name}: "
        ) as say:
            figures = run_scenario(cluster, scenario, opts, folder, say)
        done.append(figures)
        path = report.write_scenario(folder, figures)
        report.write_report(folder, done, meta)
        _print_one(figures, path)
        if as_json:
            sys.stdout.write(json.dumps(figures, indent=2, default=str) + "\n")
    html = report.write_report(folder, done, meta)
    _print_table(done)
    out.print(f"report: {html}")
    if not all(f["verdict"]["passed"] for f in done):
        raise typer.Exit(1)


@app.command("soak")
def soak_command(
    spec_file: SpecOption = DEFAULT_SPEC,
    minutes: Annotated[float, typer.Option(help="minutes of steady load")] = 10.0,
    seed: Annotated[
        int | None, typer.Option(help="seed of the draw (default: a random one, printed)")
    ] = None,
    scenarios: Annotated[
        str | None, typer.Option(help="the pool: numbers or names, comma-separated (default: all)")
    ] = None,
    interval_min: Annotated[float, typer.Option(help="least seconds between faults")] = 30.0,
    interval_max: Annotated[float, typer.Option(help="most seconds between faults")] = 60.0,
    users: Annotated[int, typer.Option(help="concurrent buyers of the steady load")] = 8,
    recover_timeout: Annotated[
        float, typer.Option(help="seconds for a fault to be healed, rejoined and healthy")
    ] = 240.0,
    results: Annotated[
        Path | None, typer.Option("--out", help="results folder (default results/soak-<stamp>/)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the soak's figures as JSON")
    ] = False,
) -> None:
    """One steady load for --minutes, a random fault from the catalogue every 30-60 s, each
    healed before the next; exit 1 unless nothing was lost, oversold or duplicated, every
    fault recovered and status is healthy at the end."""
    opts = soak.SoakOptions(
        minutes=minutes,
        seed=secrets.randbelow(1_000_000) if seed is None else seed,
        scenarios=tuple(n.strip() for n in (scenarios or "").split(",") if n.strip()),
        interval_min=interval_min,
        interval_max=interval_max,
        users=users,
        recover_timeout=recover_timeout,
    )
    opts.validate()
    drawn = soak.pool(opts.scenarios, on_lab=swarm.is_remote())
    cluster = Cluster.from_file(spec_file)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    folder = (results or Path("results") / f"soak-{stamp}").resolve()
    console.print(f"soak: seed {opts.seed}, pool {', '.join(s.name for s in drawn)}")
    with progress_display("soak: starting", console, _stage, prefix="soak: ") as say:
        result = soak.Soak(cluster, opts, drawn, folder, say).run()
    html = report.write_soak_report(folder, result)
    human = console if as_json else out  # with --json, stdout holds the JSON alone
    _print_soak(result, human)
    human.print(f"report: {html}")
    if as_json:
        sys.stdout.write(json.dumps(dataclasses.asdict(result), indent=2, default=str) + "\n")
    if not result.verdict.passed:
        raise typer.Exit(1)


def _print_soak(result: soak.SoakResult, to: Console) -> None:
    """One line per fault (times in seconds after it; at: after the load started), the totals."""
    table = Table(title=f"soak (seed {result.meta['seed']})", title_justify="left", box=None)
    columns = ("#", "scenario", "target", "at", "detect", "repair", "rejoin", "window")
    for label in (*columns, "healthy", "failed", "phantom", "ok"):
        text = label in ("scenario", "target")
        table.add_column(label, justify="left" if text else "right", no_wrap=text)
    for f in result.faults:
        table.add_row(
            *(
                report._n(v)
                for v in (
                    f.number,
                    f.name,
                    f.target,
                    f.started_s,
                    f.detect_s,
                    f.repair_s,
                    f.rejoin_s,
                    f.window_s,
                    f.healthy_s,
                    f.failed_purchases,
                    f.phantom,
                )
            ),
            "yes" if f.recovered else "NO",
        )
    to.print(table)
    t = result.totals
    to.print(
        f"completed {t.completed}, failed {t.failed}, lost {t.lost}, oversold {t.oversold}, "
        f"duplicated {t.duplicated}, phantom {t.phantom}; status at the end "
        + (
            "healthy"
            if result.status.healthy
            else "UNHEALTHY: " + "; ".join(result.status.problems)
        )
    )
    style = "green" if result.verdict.passed else "bold red"
    to.print(f"[{style}]{'pass' if result.verdict.passed else 'FAIL'}[/]")
    for reason in result.verdict.reasons:
        to.print(f"[bold red]  {reason}[/]")


def _stage(message: str) -> str | None:
    """Each stage is logged once (its first word); live figures ("+12 s ...") only spin."""
    return None if message.startswith("+") else message.split()[0]


@app.command("analyse")
def analyse(
    folder: Annotated[Path, typer.Argument(help="a results/chaos-<stamp>/ folder")],
) -> None:
    """Recompute every scenario's timeline and verdict from its recorded samples."""
    files = sorted(p for p in folder.glob("[0-9]*.json") if not p.name.endswith(".samples.json"))
    if not files:
        raise UserError(f"{folder} holds no scenario results (NN-name.json).")
    done = []
    for path in files:
        figures = json.loads(path.read_text())
        samples_file = path.with_name(path.stem + ".samples.json")
        samples = json.loads(samples_file.read_text()) if samples_file.exists() else []
        done.append(reanalyse(figures, samples))
        report.write_scenario(folder, done[-1])
    meta = {key: done[0].get(key) for key in ("stack", "users", "duration_s")}
    html = report.write_report(folder, done, meta)
    _print_table(done)
    out.print(f"report: {html}")


def _print_one(figures: dict[str, Any], path: Path) -> None:
    cells = report.row(figures)
    style = "green" if cells["verdict"] == "pass" else "bold red"
    console.print(
        f"[{style}]{cells['verdict']}[/] detect {cells['detect']} s ({cells['signal']}), "
        f"repaired {cells['repair']} s, write window {cells['window']} s "
        f"({cells['failed_window']} failed), lost {cells['lost']}, oversold {cells['oversold']}, "
        f"duplicated {cells['duplicated']}, phantom {cells['phantom']}, "
        f"rejoined {cells['rejoin']} s, healthy {cells['healthy']} s"
    )
    for reason in figures["verdict"]["reasons"]:
        console.print(f"[bold red]  {reason}[/]")
    console.print(f"  {path}")


def _print_table(results: list[dict[str, Any]]) -> None:
    table = Table(title="chaos", title_justify="left")
    for label, _ in report.COLUMNS:
        table.add_column(label, justify="right")
    for figures in results:
        cells = report.row(figures)
        table.add_row(*(cells[key] for _, key in report.COLUMNS))
    out.print(table)
