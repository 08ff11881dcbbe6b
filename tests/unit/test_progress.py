"""Every command logs its steps the same way, and takes the same --spec option."""

import io

import typer
from rich.console import Console

from pretix_cluster.chaos.cli import _stage
from pretix_cluster.cli import app
from pretix_cluster.cli_options import DEFAULT_SPEC
from pretix_cluster.progress import progress_display, step_logger


def _console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, log_time=False, log_path=False), buffer


def _logged(buffer: io.StringIO) -> list[str]:
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


def test_each_distinct_step_is_logged_once():
    console, buffer = _console()
    progress = step_logger(console)
    for message in ["deploying", "deploying", "waiting for pg-1", "waiting for pg-1", "deploying"]:
        progress(message)
    assert _logged(buffer) == ["deploying", "waiting for pg-1", "deploying"]


def test_a_stage_logs_its_first_message_and_live_figures_are_never_logged():
    console, buffer = _console()
    with progress_display("scenario", console, _stage, prefix="kill: ") as say:
        messages = ["load 8 buyers", "load +3 s", "+12 s 40 orders", "fault kill pg-1", "fault x"]
        for message in messages:
            say(message)
    logged = _logged(buffer)
    assert "load 8 buyers" in logged
    assert "fault kill pg-1" in logged
    assert not any(line.startswith(("+12", "fault x", "load +3")) for line in logged)


def _commands(group, prefix: str = ""):
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_takes_the_same_spec_option():
    root = typer.main.get_command(app)
    specs = {
        name: next(p for p in command.params if p.name == "spec_file")
        for name, command in _commands(root)
        if any(p.name == "spec_file" for p in command.params)
    }
    assert {"up", "render", "status", "loadtest", "chaos run", "bench"} <= set(specs)
    shapes = {(tuple(p.opts), p.envvar, p.help, str(p.default)) for p in specs.values()}
    assert shapes == {
        (("--spec", "-f"), "PRETIX_CLUSTER_SPEC", specs["up"].help, str(DEFAULT_SPEC))
    }
