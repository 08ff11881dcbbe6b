"""Wait until a stack that was just brought up has settled, before the bench measures it.

A stack the bench resumes (scaled back from 0) or rolls (a changed spec)
starts every pretix process anew: each takes several CPU-seconds to import
pretix and warm its caches. Measured right after `up` (session 8, the same
cluster and load, `bench --systems cluster --pace 3.855`): 86.5 purchases/min
at 2x, against 104.2 in the same run 6 minutes later. So the bench waits
until the host is quiet: two windows in a row with less than
:data:`QUIET_SHARE` of its cores busy (nothing else runs: the other stack is
paused), at most :data:`SETTLE_TIMEOUT` seconds. The wait and the busy cores
it ended on go into the report; a stack that never settles is a warning, and
its first phases include its start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pretix_cluster.loadtest.cpu import host_cpu

QUIET_SHARE = 0.3  # busy cores / host cores below which a window is quiet
WINDOW_S = 10.0
QUIET_WINDOWS = 2
SETTLE_TIMEOUT = 240.0


@dataclass(frozen=True)
class Settled:
    """How long the bench waited, what the host's last window used, and whether it was quiet."""

    waited_s: float
    busy_cores: float
    quiet: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wait_until_quiet(
    host_cores: int,
    say: Callable[[str], None],
    timeout: float = SETTLE_TIMEOUT,
    read: Callable[[], tuple[float, float]] = host_cpu,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled:
    """Sample the host's busy cores every :data:`WINDOW_S` until it is quiet or time runs out."""
    limit = QUIET_SHARE * host_cores
    waited, quiet_in_a_row, busy = 0.0, 0, 0.0
    before = read()
    while waited < timeout:
        sleep(WINDOW_S)
        waited += WINDOW_S
        after = read()
        busy = _busy_cores(before, after, host_cores)
        before = after
        quiet_in_a_row = quiet_in_a_row + 1 if busy < limit else 0
        if quiet_in_a_row >= QUIET_WINDOWS:
            return Settled(waited, round(busy, 2), True)
        say(f"settling: {busy:.2f} of {host_cores} cores busy (quiet below {limit:.2f})")
    return Settled(waited, round(busy, 2), False)


def _busy_cores(before: tuple[float, float], after: tuple[float, float], cores: int) -> float:
    """Busy cores between two /proc/stat readings (busy and total CPU-seconds of all cores)."""
    busy = after[0] - before[0]
    total = after[1] - before[1]
    return cores * busy / total if total > 0 else 0.0
