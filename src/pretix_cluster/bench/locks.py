"""How long pretix holds a quota's lock per purchase, and the ceiling that implies per quota.

pretix (since 2023.8) guards a quota with a transaction-scoped PostgreSQL
advisory lock (``pg_advisory_xact_lock``) kept until COMMIT returns: with
synchronous replication, until the standby has the commit. A cart add takes it
exclusively while it counts the quota's claims and reserves the ticket. A
checkout takes it shared right before its commit (the image's patch,
images/pretix/patches/), so that it cannot turn a cart into an order in the
middle of a count; checkouts of carts about to expire take it exclusively at
their start, as pretix does. Cart adds of one quota run one after the other, and
a committing checkout keeps them out too, while checkouts among themselves
overlap. One quota therefore admits at most ``60 s / (exclusive hold + shared
hold)`` purchases per minute when no two checkouts overlap, however many cores
the cluster has: the ceiling below (a lower bound; with every commit
overlapping another, ``60 s / exclusive hold``).

The sampler runs inside the primary: one psql session whose PL/pgSQL loop
copies the granted and waiting advisory locks on quotas out of ``pg_locks``
every :data:`INTERVAL_S` into a temporary table, for the sampling window. A
lock seen in consecutive samples by the same backend in the same mode is one
hold; its duration is the span of its samples plus one interval (the
resolution). Waiting entries give the lock waits the same way.

Modes (``synchronous_commit`` for pretix's role, :data:`MODES`): ``on`` (the
cluster's setting: COMMIT waits for the sync standby's flush),
``remote_write`` (the standby has it in memory, not yet on disk), ``local``
(no wait for the standby: synchronous replication off for these commits).
Each is set with ``ALTER ROLE`` and pretix's open connections are ended so the
next ones take it; the role is set back to the cluster's default afterwards.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from docker.models.containers import Container
from rich.console import Console

from pretix_cluster import status, swarm
from pretix_cluster.cluster import Cluster
from pretix_cluster.daemons import patroni
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.report import percentile
from pretix_cluster.loadtest.runner import LoadOptions, run_loadtest
from pretix_cluster.loadtest.shapes import Plan

INTERVAL_S = 0.002
MODES = ("on", "remote_write", "local")
CUSTOMER_RATE = 800.0  # purchases/min at the customer's peak (issue 3)
# pretix's key space of quotas (pretix.base.services.locking.KEY_SPACES): the low byte
# of its 64-bit advisory lock keys, i.e. of pg_locks.objid (the key's low half).
QUOTA_KEY_SPACE = 2

_SAMPLE_SQL = """
CREATE TEMP TABLE lock_samples
  (t double precision, pid int, key text, granted bool, exclusive bool);
DO $$
DECLARE stop timestamptz := clock_timestamp() + interval '{seconds} seconds';
BEGIN
  WHILE clock_timestamp() < stop LOOP
    INSERT INTO lock_samples
      SELECT extract(epoch FROM clock_timestamp()), l.pid,
             l.classid::text || ':' || l.objid::text, l.granted, l.mode = 'ExclusiveLock'
      FROM pg_locks l
      WHERE l.locktype = 'advisory' AND (l.objid::bigint & 255) = {key_space}
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database());
    PERFORM pg_sleep({interval});
  END LOOP;
END $$;
SELECT t, pid, key, granted, exclusive FROM lock_samples ORDER BY pid, key, t;
"""


@dataclasses.dataclass(frozen=True)
class LockSample:
    t: float
    pid: int
    key: str
    granted: bool
    exclusive: bool

    @classmethod
    def from_psql_line(cls, line: str) -> LockSample:
        t, pid, key, granted, exclusive = line.split("\t")
        return cls(float(t), int(pid), key, granted == "t", exclusive == "t")


def spans(samples: Sequence[LockSample], granted: bool, gap_s: float) -> list[float]:
    """Durations of runs of one (pid, key) seen in samples no more than ``gap_s`` apart.

    ``samples`` sorted by pid, key and time (as the sampler returns them); each
    duration is the run's span plus one interval (a lock seen once lasted up to that).
    """
    out: list[float] = []
    run: list[LockSample] = []
    for s in (x for x in samples if x.granted is granted):
        if run and (s.pid, s.key) == (run[-1].pid, run[-1].key) and s.t - run[-1].t <= gap_s:
            run.append(s)
            continue
        if run:
            out.append(run[-1].t - run[0].t + INTERVAL_S)
        run = [s]
    if run:
        out.append(run[-1].t - run[0].t + INTERVAL_S)
    return out


def _ms(x: float | None) -> float | None:
    return None if x is None else round(x * 1000, 1)


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


@dataclasses.dataclass(frozen=True)
class LockHold:
    """One mode's figures: holds per lock mode and waits in milliseconds, the ceiling."""

    mode: str
    exclusive_holds: int
    exclusive_mean_ms: float | None
    exclusive_p95_ms: float | None
    shared_holds: int
    shared_mean_ms: float | None
    shared_p95_ms: float | None
    waits: int
    wait_mean_ms: float | None
    sample_interval_ms: float

    @classmethod
    def from_samples(cls, mode: str, samples: Sequence[LockSample], gap_s: float) -> LockHold:
        exclusive = spans([s for s in samples if s.exclusive], True, gap_s)
        shared = spans([s for s in samples if not s.exclusive], True, gap_s)
        waits = spans(samples, False, gap_s)
        return cls(
            mode=mode,
            exclusive_holds=len(exclusive),
            exclusive_mean_ms=_ms(_mean(exclusive)),
            exclusive_p95_ms=_ms(percentile(exclusive, 95)),
            shared_holds=len(shared),
            shared_mean_ms=_ms(_mean(shared)),
            shared_p95_ms=_ms(percentile(shared, 95)),
            waits=len(waits),
            wait_mean_ms=_ms(_mean(waits)),
            sample_interval_ms=INTERVAL_S * 1000,
        )

    @property
    def purchase_hold_ms(self) -> float | None:
        """How long one purchase keeps cart adds out: its cart add's exclusive hold plus
        its checkout's shared one (none seen: the checkouts took no lock)."""
        if not self.exclusive_mean_ms:
            return None
        return round(self.exclusive_mean_ms + (self.shared_mean_ms or 0.0), 1)

    @property
    def ceiling_per_min(self) -> float | None:
        """Purchases per minute one quota admits when no two checkouts overlap."""
        hold = self.purchase_hold_ms
        return round(60_000 / hold, 1) if hold else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {
            "purchase_hold_ms": self.purchase_hold_ms,
            "ceiling_per_min": self.ceiling_per_min,
        }


def psql(container: Container, sql: str, timeout: float = 30) -> tuple[int, str]:
    """``sql`` in pretix's database on ``container`` as the postgres OS user (local socket,
    peer authentication); tab-separated rows, no headers. Exit code and output."""
    command = ["psql", "-h", "/var/run/postgresql", "-d", patroni.DB_NAME, "-XAtq", "-F", "\t"]
    return swarm.exec_in(container, command, stdin=sql, user="postgres", timeout=timeout)


def sample(primary: Container, seconds: float) -> list[LockSample]:
    """Advisory locks on quotas on the primary, every INTERVAL_S for ``seconds``."""
    sql = _SAMPLE_SQL.format(seconds=int(seconds), interval=INTERVAL_S, key_space=QUOTA_KEY_SPACE)
    code, output = psql(primary, sql, timeout=seconds + 60)
    if code != 0:
        raise RuntimeError(f"lock sampler: {output.strip()[-200:]}")
    return [LockSample.from_psql_line(x) for x in output.splitlines() if x.count("\t") == 4]


def set_commit_mode(primary: Container, mode: str | None) -> None:
    """pretix's role commits with ``mode`` (None: the server's default again); its open
    connections end so that new ones take it (pretix reconnects at its next request)."""
    setting = (
        f"ALTER ROLE {patroni.DB_USER} RESET synchronous_commit;"
        if mode is None
        else f"ALTER ROLE {patroni.DB_USER} SET synchronous_commit = '{mode}';"
    )
    end = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE usename = '{patroni.DB_USER}';"
    )
    code, output = psql(primary, setting + end)
    if code != 0:
        raise RuntimeError(f"synchronous_commit {mode}: {output.strip()[-200:]}")


def primary_container(cluster: Cluster) -> Container:
    """The primary's container (Patroni's leader)."""
    view = status.patroni_view(cluster)
    leader = view.leader if view else None
    containers = (
        swarm.running_containers(cluster.client, cluster.stack, leader.name) if leader else []
    )
    if not containers:
        raise UserError("Patroni names no running primary; run `status`, then the bench again.")
    return containers[0]


class _Sampler:
    """Samples the primary's locks in the steady window of a one-phase load run."""

    def __init__(self, primary: Container):
        self.primary = primary
        self._found: list[LockSample] = []
        self._thread: threading.Thread | None = None
        self._seconds = 0.0

    def start(self, plan: Plan, t_launch: float) -> None:
        (phase,) = plan.phases
        window = phase.steady_window(plan.pace_s)
        if window is None:
            return
        start, end = window
        self._seconds = end - start - 3
        self._thread = threading.Thread(
            target=self._run, args=(t_launch + start, self._seconds), daemon=True
        )
        self._thread.start()

    def _run(self, begin: float, seconds: float) -> None:
        time.sleep(max(0.0, begin - time.time()))
        self._found.extend(sample(self.primary, seconds))

    def samples(self) -> list[LockSample]:
        if self._thread is not None:
            self._thread.join(timeout=self._seconds + 90)
        return self._found


def measure(
    cluster: Cluster, target: float, seconds: float, out: Path, console: Console
) -> list[LockHold]:
    """One steady load run per mode with the sampler on the primary; the mode is reset after."""
    holds = []
    primary = primary_container(cluster)
    try:
        for mode in MODES:
            console.print(f"[bold]lock hold[/]: synchronous_commit={mode}, {seconds:.0f} s")
            set_commit_mode(primary, mode)
            sampler = _Sampler(primary)
            load = LoadOptions(
                scenario="shop",
                shape="steady",
                target=target,
                duration=seconds,
                out=out / f"locks-{mode}",
                on_launch=sampler.start,
            )
            run_loadtest(cluster, load, console)
            holds.append(LockHold.from_samples(mode, sampler.samples(), gap_s=3 * INTERVAL_S))
    finally:
        set_commit_mode(primary, None)
    return holds
