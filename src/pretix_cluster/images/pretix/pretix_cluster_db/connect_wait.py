"""How long a new database connection may wait for a primary (no Django here).

During a PostgreSQL failover HAProxy has no primary to send a new connection
to for ~20 s: it accepts and closes it, and pretix answered the buyer with a
500. A connection that could not be made has executed nothing, so trying again
is safe: the request waits for the new primary instead of failing. Only the
connect is retried, never a statement on a connection that broke.

A long outage must not hold every gunicorn worker: after a wait that ran out,
the process connects without waiting until ``pause_s`` has passed, so the
liveness check still finds a free worker and requests fail fast while the
database is gone for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_PAUSE_S = 0.25
LONGEST_PAUSE_S = 2.0


class ConnectWait:
    """One process's connect policy: retry within ``wait_s``, then fail fast for ``pause_s``."""

    def __init__(
        self,
        wait_s: float,
        pause_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.wait_s = wait_s
        self.pause_s = pause_s
        self.clock = clock
        self.sleep = sleep
        self.gave_up_at: float | None = None

    def waiting(self) -> bool:
        """False while a recent wait ran out: the database is down, not failing over."""
        return self.gave_up_at is None or self.clock() - self.gave_up_at >= self.pause_s

    def connect(self, attempt: Callable[[], T], retry_on: type[BaseException]) -> T:
        """``attempt()`` until it succeeds or the wait is spent (then its last error)."""
        if not self.waiting():
            return attempt()
        deadline = self.clock() + self.wait_s
        pause = FIRST_PAUSE_S
        while True:
            try:
                connection = attempt()
            except retry_on:
                if self.clock() + pause > deadline:
                    self.gave_up_at = self.clock()
                    raise
                self.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_S)
            else:
                self.gave_up_at = None
                return connection
