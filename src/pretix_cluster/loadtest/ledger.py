"""The buyers' ledger: one JSON line per purchase attempt, written by the buyer side.

The accounting needs what the buyers *saw*, independent of what the database
says: an order counts as completed only when its buyer landed on the order page
(shop) or got the 201 with the order code (API). Each Locust process appends to
its own file (``ledger-<host>-<pid>.jsonl``): no interleaving between forked
workers, no locking, and a crashed process loses at most its last line.

A record (see ``flows._Attempt.finish``)::

    {"run", "attempt", "scenario", "event", "email", "pid", "phase"?,
     "outcome": "completed" | "failed" | "interrupted",
     "t0", "t1", "seconds", "steps": {step: seconds}, "retries", "retry_kinds",
     "code" (completed) | "kind", "step", "status", "message", "code_hint" (failed),
     "queue_s", "queue_holds", "queue_position" (only when the waiting room held the buyer)}

``seconds`` and ``steps`` are the admitted buyer's: ``t1 - t0`` is ``queue_s +
seconds``, the buyer's whole time from arrival to the last page.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import IO, Any

LEDGER_GLOB = "ledger-*.jsonl"
TEST_START = "test_start"  # Locust's start of the measured load, written by the locustfile


def start_ledger(directory: Path | str) -> Path:
    """An empty ledger folder for a new run.

    A results folder holds one run: a previous run's ledger left in it would count
    that run's buyers as this run's, and their orders (in another event) as lost.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in [*directory.glob(LEDGER_GLOB), directory / TEST_START]:
        stale.unlink(missing_ok=True)
    return directory


class LedgerWriter:
    """Appends records; reopens its file after a fork so every process has its own."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self._pid: int | None = None
        self._file: IO[str] | None = None

    @property
    def path(self) -> Path:
        return self.directory / f"ledger-{socket.gethostname()}-{os.getpid()}.jsonl"

    def write(self, record: dict[str, Any]) -> None:
        if self._pid != os.getpid() or self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            self._pid = os.getpid()
        self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None


def read_ledger(directory: Path | str) -> list[dict[str, Any]]:
    """All records of a run, ordered by start time (a torn last line is skipped)."""
    records: list[dict[str, Any]] = []
    for path in sorted(Path(directory).glob(LEDGER_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    records.sort(key=lambda r: r.get("t0", 0))
    return records


class LedgerTail:
    """Reads only what was appended since the last call (live progress)."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        self._offsets: dict[Path, int] = {}

    def new_records(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for path in sorted(self.directory.glob(LEDGER_GLOB)):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # only whole lines
            for line in chunk[:end].splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
            self._offsets[path] = offset + end
        return out
