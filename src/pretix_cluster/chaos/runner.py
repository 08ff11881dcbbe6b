"""One scenario end to end: steady load, warm-up, fault, recovery, accounting, figures.

1. wait until ``status`` is healthy (a scenario never starts on a broken cluster);
2. start the observers (:mod:`observe`) and a steady purchase load
   (:func:`pretix_cluster.loadtest.runner.run_loadtest`, in a thread; its
   buyers write the ledger);
3. warm-up: purchases complete steadily for ``fault_at`` seconds;
4. choose the target from the live cluster and inject the fault; undo a
   partition once the repair was seen (bounded in any case);
5. keep the load for the rest of ``duration``; then wait, bounded, until the
   failed node is back and ``status`` is healthy;
6. the figures: the load test's accounting (ledger vs database), the
   write-unavailability window from the ledger, detection/repair/rejoin from
   the samples, time to healthy, and the verdict.

Every wait has a deadline; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from pretix_cluster import status, swarm
from pretix_cluster.chaos import analysis
from pretix_cluster.chaos.faults import Fault
from pretix_cluster.chaos.observe import HealthWatch, Sample, Sampler
from pretix_cluster.chaos.scenarios import Scenario, Target, pg_primary, redis_master
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.ledger import TEST_START, LedgerTail, read_ledger
from pretix_cluster.loadtest.runner import LoadOptions, RunResult, run_loadtest

Say = Callable[[str], None]
STEADY_WINDOW_S = 20.0
LOAD_START_TIMEOUT_S = 180.0  # idle measurement, calibration and Locust's start
WARMUP_GRACE_S = 60.0


@dataclasses.dataclass
class ChaosOptions:
    users: int = 8
    duration: float = 150.0  # seconds of load per scenario
    fault_at: float = 40.0  # seconds after the load started
    recover_timeout: float = 240.0  # after the fault: rejoined and healthy by then
    ready_timeout: float = 240.0  # before the fault: healthy by then
    interval: float = 1.0  # seconds between samples

    def validate(self) -> None:
        if self.users < 1:
            raise UserError("--users must be at least 1.")
        if not 20 <= self.fault_at <= self.duration - 30:
            raise UserError(
                "--fault-at must be at least 20 s, and leave at least 30 s of --duration after it."
            )


class LoadThread(threading.Thread):
    """The load test in the background; its result or its exception afterwards."""

    def __init__(self, cluster: Cluster, opts: LoadOptions, log: Path):
        super().__init__(name="chaos-load", daemon=True)
        self.cluster, self.opts, self.log = dataclasses.replace(cluster), opts, log
        self.result: RunResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        with self.log.open("w") as f:
            try:
                self.result = run_loadtest(self.cluster, self.opts, Console(file=f, width=120))
            except BaseException as exc:  # reported with the scenario, not lost in a thread
                self.error = exc


def wait_healthy(cluster: Cluster, timeout: float, say: Say) -> status.Status:
    deadline = time.monotonic() + timeout
    while True:
        result = status.collect(cluster)
        if result.healthy or time.monotonic() > deadline:
            return result
        say(f"waiting for a healthy cluster: {result.problems[0]}")
        time.sleep(3)


def desired_tasks(cluster: Cluster) -> dict[str, int]:
    prefix = cluster.stack + "_"
    return {
        s.name.removeprefix(prefix): s.desired
        for s in swarm.service_states(cluster.client, cluster.stack)
    }


def _recent_completions(tail: LedgerTail, done: list[float]) -> int:
    for r in tail.new_records():
        if r.get("phase") != "calibration" and r.get("outcome") == "completed":
            done.append(r["t1"])
    horizon = time.time() - STEADY_WINDOW_S
    return sum(1 for t in done if t >= horizon)


def warm_up(load: LoadThread, ledger_dir: Path, opts: ChaosOptions, say: Say) -> float:
    """Wait for Locust's start, then for ``fault_at`` s of steadily completing purchases."""
    deadline = time.monotonic() + LOAD_START_TIMEOUT_S
    marker = ledger_dir / TEST_START
    while not marker.exists():
        if not load.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the load did not start" + _load_error(load))
        say("load: measuring idle CPU, calibrating, starting the buyers")
        time.sleep(1)
    started = float(marker.read_text().strip() or time.time())
    tail, done = LedgerTail(ledger_dir), []
    needed = max(2, opts.users // 2)
    while True:
        recent = _recent_completions(tail, done)
        elapsed = time.time() - started
        if elapsed >= opts.fault_at and recent >= needed:
            return started
        if not load.is_alive() or elapsed > opts.fault_at + WARMUP_GRACE_S:
            raise RuntimeError(
                f"purchases did not complete steadily ({recent} in the last "
                f"{STEADY_WINDOW_S:.0f} s, {needed} needed)" + _load_error(load)
            )
        say(f"warm-up {elapsed:.0f}/{opts.fault_at:.0f} s: {len(done)} purchases completed")
        time.sleep(1)


def _load_error(load: LoadThread) -> str:
    return f": {type(load.error).__name__}: {load.error}" if load.error else ""


def run_scenario(
    cluster: Cluster, scenario: Scenario, opts: ChaosOptions, out: Path, say: Say
) -> dict[str, Any]:
    """Run one scenario; the figures as a JSON-able dict (see the module doc)."""
    out.mkdir(parents=True, exist_ok=True)
    load_dir = out / f"{scenario.number:02d}-{scenario.name}"
    figures: dict[str, Any] = {
        "scenario": scenario.number,
        "name": scenario.name,
        "title": scenario.title,
        "stack": cluster.stack,
        "users": opts.users,
        "duration_s": opts.duration,
        "load_dir": str(load_dir),
    }
    if scenario.machine:
        cluster = control_from_a_spare_machine(cluster, say)
    ready = wait_healthy(cluster, opts.ready_timeout, say)
    if not ready.healthy:
        figures["error"] = "cluster not healthy before the fault: " + "; ".join(ready.problems)
        figures["verdict"] = analysis.verdict(figures)
        return figures
    sampler = Sampler(cluster, opts.interval)
    health = HealthWatch(cluster)
    load = LoadThread(
        cluster,
        LoadOptions(
            shape="steady", users=opts.users, duration=opts.duration, quiet=True, out=load_dir
        ),
        out / f"{scenario.number:02d}-{scenario.name}.load.log",
    )
    fault: Fault | None = None
    watch: analysis.Watch | None = None
    sampler.start()
    load.start()
    try:
        started = warm_up(load, load_dir / "ledger", opts, say)
        target = scenario.pick(cluster)
        watch = analysis.Watch(
            scenario.watch, target.service, target.node, desired_tasks(cluster), target.members
        )
        # Only a scenario that promises to leave tasks alone needs to know them.
        tasks_before = (
            swarm.running_task_ids(cluster.client, cluster.stack) if scenario.keeps_tasks else {}
        )
        sampler.avoid = target.node
        fault = scenario.fault(cluster, target)
        figures |= {"target": _target_dict(target), "fault": fault.describe(), "kind": fault.kind}
        figures["watch"] = dataclasses.asdict(watch)  # what `chaos analyse` needs to redo it
        figures["load_started_at"] = started
        say(f"fault: {fault.describe()}")
        fault_at = time.time()
        fault.inject()
        figures["fault_at"] = fault_at
        figures["inject_s"] = round(time.time() - fault_at, 2)
        health.start()
        figures["healed_at"] = _recover(
            scenario, watch, fault, fault_at, load, sampler, health, opts, say
        )
        if scenario.keeps_tasks:
            after = swarm.running_task_ids(cluster.client, cluster.stack)
            kept = {name: tasks_before.get(name, set()) for name in scenario.keeps_tasks}
            figures["tasks_replaced"] = analysis.tasks_replaced(kept, after)
    except Exception as exc:
        figures["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        _heal_for_good(fault, figures)
        load.join(timeout=opts.duration + 600)
        sampler.stop()
        if health.is_alive():
            health.stop()
    return _figures(figures, watch, sampler, health, load, load_dir, out, scenario)


def control_from_a_spare_machine(cluster: Cluster, say: Say) -> Cluster:
    """Talk to the swarm through a manager that holds neither the PostgreSQL primary nor
    the Redis master, so that the machine a scenario takes is never the tool's way in.

    With three machines and two roles one is always spare. DOCKER_HOST is switched
    for this process (the docker CLI reads it too); the cluster gets fresh clients.
    """
    if not swarm.is_remote():
        raise UserError(
            "machine scenarios take a whole lab machine: bring up a lab (`pretix-cluster lab "
            "up`) and point at it with `eval $(pretix-cluster lab env)`."
        )
    busy = {
        swarm.task_node(cluster.client, cluster.stack, target.service)
        for target in (pg_primary(cluster), redis_master(cluster))
    }
    spare = [
        n
        for n in swarm.nodes(cluster.client)
        if n.ready and n.role == "manager" and n.hostname not in busy
    ]
    if not spare:
        raise UserError("no ready manager is free of the primary and the master; add a machine.")
    endpoint = swarm.node_endpoint(os.environ["DOCKER_HOST"], spare[0])
    assert endpoint is not None  # is_remote: tcp:// or ssh://
    os.environ["DOCKER_HOST"] = endpoint
    say(f"control: through {spare[0].hostname} ({endpoint}), spare of the primary and master")
    return dataclasses.replace(cluster)


def _heal_for_good(fault: Fault | None, figures: dict[str, Any]) -> None:
    """Undo the fault whatever happened (heals are idempotent); a heal that fails is
    part of the figures, never a crash of the whole run."""
    if fault is None or not fault.needs_heal:
        return
    try:
        fault.heal()
    except Exception as exc:
        figures.setdefault("error", f"heal failed: {type(exc).__name__}: {exc}")


def _recover(
    scenario: Scenario,
    watch: analysis.Watch,
    fault: Fault,
    fault_at: float,
    load: LoadThread,
    sampler: Sampler,
    health: HealthWatch,
    opts: ChaosOptions,
    say: Say,
) -> float | None:
    """Heal when due, keep the load, then wait (bounded) for rejoin and a healthy status.
    When the fault was healed (None: nothing to heal)."""
    deadline = fault_at + opts.recover_timeout
    healed = not fault.needs_heal
    healed_at = None
    while True:
        now = time.time()
        seen = analysis.timeline(list(sampler.samples), watch, fault_at)
        if seen.detected_at is not None and health.not_before is None:
            health.not_before = seen.detected_at
        if not healed:
            repaired = seen.repaired_at
            due = fault_at + scenario.max_fault_s
            if repaired is not None:
                due = min(due, repaired + scenario.heal_after_repair_s)
            if now >= due:
                say("heal: " + fault.describe() + " undone")
                fault.heal()
                healed, healed_at = True, time.time()
        say(_progress_line(now - fault_at, seen, health, load))
        # A node never seen out of its place has nothing to rejoin.
        back = seen.rejoined_at is not None or not seen.rejoin_seen_failing
        finished = back and health.healthy_at is not None
        if (not load.is_alive() and (finished or now > deadline)) or (
            now > deadline + opts.duration
        ):
            return healed_at
        time.sleep(1)


def _progress_line(
    elapsed: float, seen: analysis.Timeline, health: HealthWatch, load: LoadThread
) -> str:
    def mark(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}s"

    healthy = "-" if health.healthy_at is None else "yes"
    return (
        f"+{elapsed:.0f}s detected {mark(seen.detect_s)} ({seen.first_signal or '-'}), "
        f"repaired {mark(seen.repair_s)}, rejoined {mark(seen.rejoin_s)}, healthy {healthy}, "
        f"load {'running' if load.is_alive() else 'done'}"
    )


def rewind_lines(log: str) -> list[str]:
    """Lines where Patroni says it rewound (or could not rewind) the old primary."""
    return [line.strip()[-200:] for line in log.splitlines() if "rewind" in line.lower()][:8]


def _service_log_since(cluster: Cluster, service: str, since: float) -> str:
    """The service's log since the fault (every task of it), best effort."""
    try:
        svc = cluster.client.services.get(cluster.spec.service_name(service))
        chunks = svc.logs(stdout=True, stderr=True, since=int(since), timestamps=False)
        return b"".join(chunks).decode(errors="replace")
    except Exception:  # evidence only: the figures stand without it
        return ""


def _target_dict(target: Target) -> dict[str, Any]:
    return {
        "service": target.service,
        "node": target.node,
        "role": target.role,
        "container": target.container.name if target.container is not None else None,
        "machine": target.machine,
    }


def _figures(
    figures: dict[str, Any],
    watch: analysis.Watch | None,
    sampler: Sampler,
    health: HealthWatch,
    load: LoadThread,
    load_dir: Path,
    out: Path,
    scenario: Scenario,
) -> dict[str, Any]:
    fault_at = figures.get("fault_at")
    if load.error is not None and "error" not in figures:
        figures["error"] = f"load test failed: {type(load.error).__name__}: {load.error}"
    if load.result is not None:
        accounting = load.result.accounting
        figures["integrity"] = analysis.integrity(accounting)
        figures["accounting"] = accounting.to_dict() if accounting else None
        figures["load_report"] = str(load.result.out / "report.html")
    if fault_at is not None and watch is not None:
        figures["timeline"] = analysis.timeline(sampler.samples, watch, fault_at).to_dict()
        figures["tasks_back_s"] = analysis.tasks_back(sampler.samples, watch, fault_at)
        records = read_ledger(load_dir / "ledger") if (load_dir / "ledger").exists() else []
        figures["window"] = analysis.write_window(records, fault_at)
        figures["completed_while_faulted"] = analysis.completed_while_faulted(
            records, fault_at, figures.get("healed_at")
        )
        figures["keeps_selling"] = scenario.keeps_selling
        figures["keeps_tasks"] = list(scenario.keeps_tasks)
        if watch.kind == "pg_primary":
            log = _service_log_since(sampler.cluster, watch.service, fault_at)
            figures["rejoin_evidence"] = rewind_lines(log)
        figures["healthy_at"] = health.healthy_at
        figures["healthy_s"] = (
            None if health.healthy_at is None else round(health.healthy_at - fault_at, 2)
        )
    figures["samples"] = len(sampler.samples)
    # The resolution of every time read off the samples.
    gaps = [b.t - a.t for a, b in zip(sampler.samples, sampler.samples[1:], strict=False)]
    figures["sample_period_s"] = round(statistics.median(gaps), 2) if gaps else None
    figures["status_checks"] = health.checks
    figures["verdict"] = analysis.verdict(figures)
    samples_file = out / f"{scenario.number:02d}-{scenario.name}.samples.json"
    figures["samples_file"] = str(samples_file)
    _write_json(samples_file, [sample.to_json() for sample in sampler.samples])
    return figures


def reanalyse(figures: dict[str, Any], recorded: list[dict[str, Any]]) -> dict[str, Any]:
    """The timeline and verdict again, from a run's recorded samples (the JSON of
    NN-name.samples.json) after the analysis improved: the samples are the evidence,
    the figures only a reading of them. A run without a stored watch is left as it is."""
    fault_at, stored = figures.get("fault_at"), figures.get("watch")
    if fault_at is None or stored is None:
        return figures
    samples = [Sample.from_json(s) for s in recorded]
    figures["timeline"] = analysis.timeline(samples, analysis.Watch(**stored), fault_at).to_dict()
    figures["verdict"] = analysis.verdict(figures)
    return figures


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
