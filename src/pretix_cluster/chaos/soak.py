"""A soak: one steady purchase load, and faults drawn from the catalogue one after another.

1. wait until ``status`` is healthy; start one sampler (:mod:`observe`) and one
   steady load (the load test, as a scenario runs it) for the whole run;
2. after the warm-up and each drawn interval: draw a scenario from the pool,
   choose its target from the live cluster (never the previous target when
   another scenario offers a different one), inject its fault;
3. wait until the fault is healed (a partition or a pause undone once the
   repair was seen, bounded by the scenario), the failed node back, and a
   ``status`` check started after that healthy; not within
   ``recover_timeout``: heal it and inject no more;
4. no fault in the last ``interval_min`` seconds of the load (it must show its
   effect under load); then the load's own accounting of the ledger against
   the database, ``status`` once more, and :mod:`soak_analysis` for the figures.

The draw (scenario order, intervals) comes from one seeded generator, so a
seed gives the same sequence of scenarios and intervals again; targets are
whatever holds the role at the time.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pretix_cluster.chaos import analysis, soak_analysis
from pretix_cluster.chaos.faults import Fault
from pretix_cluster.chaos.observe import HealthWatch, Sampler
from pretix_cluster.chaos.runner import (
    ChaosOptions,
    LoadThread,
    Say,
    control_from_a_spare_machine,
    desired_tasks,
    wait_healthy,
    warm_up,
)
from pretix_cluster.chaos.scenarios import SCENARIOS, Scenario, Target, applicable, select
from pretix_cluster.chaos.soak_analysis import EndStatus, InjectedFault, SoakResult

__all__ = ["Draw", "Soak", "SoakOptions", "SoakResult", "pool"]
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.ledger import read_ledger
from pretix_cluster.loadtest.runner import LoadOptions

END_STATUS_TIMEOUT_S = 60.0  # a probe that times out once is no unhealthy cluster
LOAD_END_GRACE_S = 600.0  # the load's accounting and report after its last second


@dataclass
class SoakOptions:
    minutes: float = 10.0
    seed: int = 0
    scenarios: tuple[str, ...] = ()  # names or numbers; empty: every drawable one
    interval_min: float = 30.0
    interval_max: float = 60.0
    users: int = 8
    recover_timeout: float = 240.0  # after a fault: healed, rejoined and healthy by then
    ready_timeout: float = 240.0  # before the load: healthy by then
    sample_interval: float = 1.0

    def validate(self) -> None:
        if self.users < 1:
            raise UserError("--users must be at least 1.")
        if not 10 <= self.interval_min <= self.interval_max:
            raise UserError("--interval-min must be at least 10 s and at most --interval-max.")
        if self.minutes * 60 < 2 * self.interval_min + 30:
            raise UserError(
                "--minutes is too short for a fault: give it at least twice --interval-min "
                "plus 30 s."
            )
        if self.recover_timeout < 30:
            raise UserError("--recover-timeout must be at least 30 s.")


def pool(names: Sequence[str], on_lab: bool) -> list[Scenario]:
    """The scenarios a soak draws from: the named ones, or every drawable one that applies."""
    if not names:
        return [s for s in SCENARIOS if s.soak and applicable(s, on_lab)]
    chosen = list(dict.fromkeys(select(list(names), on_lab)))
    refused = [s for s in chosen if not s.soak]
    if refused:
        raise UserError(
            f"scenario {refused[0].name} is not drawn in a soak (run it alone with `chaos run`); "
            "leave it out of --scenarios."
        )
    return chosen


def target_key(target: Target) -> str:
    """What "the same target" means: the same machine, else the same node of the cluster."""
    return target.machine or target.node


class Draw:
    """The seeded draw: which scenario next (never the previous target if avoidable), and
    how long to wait before it."""

    def __init__(self, seed: int, scenarios: Sequence[Scenario], low: float, high: float):
        if not scenarios:
            raise UserError("no scenario to draw from: name some with --scenarios.")
        self.rng = random.Random(seed)
        self.scenarios = list(scenarios)
        self.low, self.high = low, high

    def interval(self) -> float:
        return round(self.rng.uniform(self.low, self.high), 1)

    def next(
        self, pick: Callable[[Scenario], Target], previous: str | None
    ) -> tuple[Scenario, Target, bool]:
        """The scenarios in a random order, the first whose live target differs from the
        previous one; when none does, the first (and True: the target repeats)."""
        first: tuple[Scenario, Target] | None = None
        for scenario in self.rng.sample(self.scenarios, len(self.scenarios)):
            target = pick(scenario)
            if target_key(target) != previous:
                return scenario, target, False
            first = first or (scenario, target)
        assert first is not None
        return (*first, True)


@dataclass(frozen=True)
class Recovery:
    healed_at: float | None
    healthy_at: float | None
    error: str | None


class Soak:
    """One soak run against ``cluster``; :meth:`run` returns its figures."""

    def __init__(
        self,
        cluster: Cluster,
        opts: SoakOptions,
        scenarios: Sequence[Scenario],
        out: Path,
        say: Say,
    ):
        self.cluster, self.opts, self.out, self.say = cluster, opts, out, say
        self.draw = Draw(opts.seed, scenarios, opts.interval_min, opts.interval_max)
        self.load_dir = out / "load"
        self.sampler = Sampler(cluster, opts.sample_interval)
        self.load = LoadThread(
            cluster,
            LoadOptions(
                shape="steady",
                users=opts.users,
                duration=opts.minutes * 60,
                quiet=True,
                out=self.load_dir,
            ),
            out / "load.log",
        )
        self.injected: list[InjectedFault] = []
        self.meta: dict[str, Any] = {
            "stack": cluster.stack,
            "seed": opts.seed,
            "minutes": opts.minutes,
            "users": opts.users,
            "pool": [s.name for s in scenarios],
            "interval_s": [opts.interval_min, opts.interval_max],
            "recover_timeout_s": opts.recover_timeout,
        }

    def run(self) -> SoakResult:
        self.out.mkdir(parents=True, exist_ok=True)
        ready = wait_healthy(self.cluster, self.opts.ready_timeout, self.say)
        if not ready.healthy:
            error = "cluster not healthy before the soak: " + "; ".join(ready.problems)
            return self._result(time.time(), time.time(), error)
        started, error = time.time(), None
        self.sampler.start()
        self.load.start()
        try:
            # The first fault after the warm-up and one drawn interval of steady purchases.
            warmup = ChaosOptions(users=self.opts.users, fault_at=self.draw.interval())
            started = warm_up(self.load, self.load_dir / "ledger", warmup, self.say)
            error = self._faults(started + self.opts.minutes * 60)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.say("load: finishing, then the ledger against the database")
            self.load.join(timeout=self.opts.minutes * 60 + LOAD_END_GRACE_S)
            self.sampler.stop()
        if self.load.error is not None and error is None:
            error = f"load test failed: {type(self.load.error).__name__}: {self.load.error}"
        return self._result(started, time.time(), error)

    def _faults(self, end: float) -> str | None:
        """Inject, recover, wait, again, while the load has room for another fault."""
        previous: str | None = None
        while end - time.time() >= self.opts.interval_min and self.load.is_alive():
            fault = self._inject(len(self.injected) + 1, previous)
            previous = fault.target_key
            if fault.recovery.error:
                return f"fault {len(self.injected)} ({fault.record.name}): {fault.recovery.error}"
            pause = self.draw.interval()
            next_at = time.time() + pause
            while time.time() < next_at and self.load.is_alive():
                self.say(f"+ next fault in {next_at - time.time():.0f} s")
                time.sleep(1)
        return None

    def _inject(self, number: int, previous: str | None) -> _Done:
        cluster = self.cluster
        scenario, target, repeated = self.draw.next(lambda s: s.pick(cluster), previous)
        if scenario.machine:
            cluster = control_from_a_spare_machine(cluster, self.say)
        watch = analysis.Watch(scenario.watch, target.service, target.node, desired_tasks(cluster))
        fault = scenario.fault(cluster, target)
        self.say(f"fault {number}: {scenario.name}: {fault.describe()}")
        self.sampler.avoid = target.node
        fault_at = time.time()
        try:
            fault.inject()
            recovery = self._recover(scenario, watch, fault, fault_at)
        except Exception as exc:
            recovery = Recovery(None, None, f"{type(exc).__name__}: {exc}")
        finally:
            if fault.needs_heal:
                fault.heal()  # idempotent: after an error too, never left broken
            self.sampler.avoid = None
        record = InjectedFault(
            number=number,
            scenario=scenario.number,
            name=scenario.name,
            title=scenario.title,
            target=target.node,
            role=target.role,
            container=target.container.name if target.container is not None else None,
            machine=target.machine,
            fault=fault.describe(),
            watch=watch,
            fault_at=fault_at,
            repeated_target=repeated,
            healed_at=recovery.healed_at,
            healthy_at=recovery.healthy_at,
            error=recovery.error,
        )
        self.injected.append(record)
        self.say(_recovered_line(record))
        return _Done(record, recovery, target_key(target))

    def _recover(
        self, scenario: Scenario, watch: analysis.Watch, fault: Fault, fault_at: float
    ) -> Recovery:
        """Heal when due (as a scenario does), then wait for the node back and a healthy
        status check started after detection and heal; bounded by ``recover_timeout``."""
        health = HealthWatch(self.cluster)
        health.start()
        deadline = fault_at + self.opts.recover_timeout
        healed_at = None if fault.needs_heal else fault_at
        try:
            while True:
                now = time.time()
                seen = analysis.timeline(self.sampler.samples, watch, fault_at)
                if healed_at is None and now >= _heal_due(scenario, seen, fault_at):
                    self.say(f"heal: {fault.describe()} undone")
                    fault.heal()
                    healed_at = time.time()
                if health.not_before is None and seen.detected_at and healed_at:
                    health.not_before = max(seen.detected_at, healed_at)
                back = seen.rejoined_at is not None or not seen.rejoin_seen_failing
                if back and health.healthy_at is not None:
                    return Recovery(_ours(fault, healed_at), health.healthy_at, None)
                if now > deadline:
                    last = health.checks[-1]["problems"][:1] if health.checks else []
                    return Recovery(
                        _ours(fault, healed_at),
                        None,
                        f"not recovered within {self.opts.recover_timeout:.0f} s"
                        + (f" ({last[0]})" if last else ""),
                    )
                self.say(f"+{now - fault_at:.0f}s " + _seen_line(seen, health))
                time.sleep(1)
        finally:
            health.stop()

    def _result(self, started: float, end: float, error: str | None) -> SoakResult:
        final = wait_healthy(self.cluster, END_STATUS_TIMEOUT_S, self.say)
        ledger = self.load_dir / "ledger"
        records = read_ledger(ledger) if ledger.exists() else []
        result = self.load.result
        accounting = result.accounting if result is not None else None
        self.meta["load_report"] = str(result.out / "report.html") if result else None
        samples = list(self.sampler.samples)
        _write_json(self.out / "faults.json", [f.to_json() for f in self.injected])
        _write_json(self.out / "samples.json", [s.to_json() for s in samples])
        _write_json(
            self.out / "run.json", {"meta": self.meta, "load_started_at": started, "end": end}
        )
        return soak_analysis.analyse(
            self.meta,
            self.injected,
            samples,
            records,
            accounting,
            EndStatus(final.healthy, tuple(final.problems)),
            load_started_at=started,
            end=end,
            error=error,
        )


@dataclass(frozen=True)
class _Done:
    record: InjectedFault
    recovery: Recovery
    target_key: str


def _heal_due(scenario: Scenario, seen: analysis.Timeline, fault_at: float) -> float:
    due = fault_at + scenario.max_fault_s
    if seen.repaired_at is not None:
        due = min(due, seen.repaired_at + scenario.heal_after_repair_s)
    return due


def _ours(fault: Fault, healed_at: float | None) -> float | None:
    """The heal time only for faults that have one."""
    return healed_at if fault.needs_heal else None


def _seen_line(seen: analysis.Timeline, health: HealthWatch) -> str:
    def mark(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}s"

    return (
        f"detected {mark(seen.detect_s)} ({seen.first_signal or '-'}), repaired "
        f"{mark(seen.repair_s)}, rejoined {mark(seen.rejoin_s)}, "
        f"healthy {'-' if health.healthy_at is None else 'yes'}"
    )


def _recovered_line(fault: InjectedFault) -> str:
    if fault.error:
        return f"fault {fault.number}: {fault.error}"
    took = "-" if fault.healthy_at is None else f"{fault.healthy_at - fault.fault_at:.0f} s"
    return f"fault {fault.number}: {fault.name} on {fault.target}: healthy again after {took}"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
