"""Progress on the terminal: every command logs its steps the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

Progress = Callable[[str], None]
# Which step a message belongs to; None: a live figure, shown but never logged.
Stage = Callable[[str], str | None]


def _whole_message(message: str) -> str | None:
    return message


def step_logger(console: Console, stage: Stage = _whole_message) -> Progress:
    """Log a message (dim) when its step differs from the previous message's.

    For callers under another live display (the load test's), where a spinner
    of their own would clash.
    """
    last: list[str | None] = [None]

    def progress(message: str) -> None:
        step = stage(message)
        if step is not None and step != last[0]:
            console.log(message, style="dim")
        last[0] = step

    return progress


@contextmanager
def progress_display(
    title: str, console: Console, stage: Stage = _whole_message, prefix: str = ""
) -> Iterator[Progress]:
    """A spinner showing the latest message, over the log of every step."""
    log = step_logger(console, stage)
    with console.status(title) as spinner:

        def progress(message: str) -> None:
            spinner.update(prefix + message)
            log(message)

        yield progress
