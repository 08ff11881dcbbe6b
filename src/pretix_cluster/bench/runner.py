"""The bench's sequence: the baseline's runs, then the cluster's, never both at once.

1. pause the cluster (every service to 0 replicas; data, secrets and networks
   stay) so that the baseline has the machine's cores to itself;
2. `up` the baseline (deploy, migrations, the same demo shop and API token);
3. the load runs against the baseline, one per scenario (shop, api);
4. pause the baseline, `up` the cluster again (restores its replicas);
5. the same load runs against the cluster;
6. analysis and reports. The baseline stays paused (or is purged on request);
   the cluster is left running, also after a failure in between.

The load is the load test's ``phases`` shape: 0.5x, 1x, 2x and 10x of a target
in purchases/min, the 10x phase twice as long as each other one (a purchase
takes longest there, and its steady window opens one purchase time after the
ramp). A fixed target (rather than one calibrated per run) and one pace for
both systems (the first run's calibrated one) make the two see the same
buyers offering the same load, and runs on different days comparable; pass
``--target`` for a bigger machine or a tuned cluster.

Every step is bounded: `up` by its own timeouts, each load run by its plan
plus the runner's hard deadline, pausing by :data:`~.stacks.PAUSE_TIMEOUT`.
All traffic goes to 127.0.0.1 (the stacks' published ports).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from pretix_cluster import bootstrap
from pretix_cluster.bench import analysis, locks, profile, settle, stacks, sweep
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.runner import LoadOptions, run_loadtest
from pretix_cluster.progress import step_logger
from pretix_cluster.render import topology

SYSTEMS = ("baseline", "cluster")
SCENARIOS = ("shop", "api")
CAPACITY_TARGET = 800.0  # purchases/min the customer plans for (issue 3)


@dataclasses.dataclass
class BenchOptions:
    target: float | None = None  # purchases/min at 1x; None: [bench] target of the spec
    duration: float = 300.0  # seconds per load run (four phases)
    scenarios: tuple[str, ...] = ("shop",)
    systems: tuple[str, ...] = SYSTEMS
    max_users: int = 500
    isolate: bool = True  # pause the stack that is not measured
    purge_baseline: bool = False
    out: Path | None = None
    capacity_target: float = CAPACITY_TARGET
    profile: bool = False  # py-spy and pg_stat_statements during each run (bench/profile.py)
    lock_hold: float = 0.0  # seconds of steady load per synchronous_commit mode (bench/locks.py)
    cores: tuple[float, ...] = ()  # the core sweep (bench/sweep.py); empty: none
    sweep_duration: float = 180.0  # seconds per point of the sweep
    pace: float | None = None  # seconds between a buyer's purchase starts; None: calibrated


def run_bench(cluster: Cluster, opts: BenchOptions, console: Console) -> tuple[dict, Path]:
    """Run the whole bench; returns the bench document and its folder."""
    _validate(opts)
    baseline = stacks.baseline_of(cluster)
    target = opts.target or cluster.spec.bench.target
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = (opts.out or Path("results") / f"bench-{stamp}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    say = console.print
    runs: dict[str, dict[str, Any]] = {s: {} for s in opts.systems}
    errors: list[str] = []
    images: dict[str, dict[str, str]] = {}
    targets = {"baseline": baseline, "cluster": cluster}
    cluster_paused = False
    lock_holds: list[dict[str, Any]] = []
    settled: dict[str, settle.Settled] = {}
    sweep_result: dict[str, Any] | None = None
    # One plan per scenario for both systems: the first run's calibrated pace is the
    # second's, so the same buyers offer the same load (a cold cluster right after `up`
    # calibrated 2.5x slower than the baseline and got 2.5x the buyers at 10x).
    paces: dict[str, float] = dict.fromkeys(opts.scenarios, opts.pace) if opts.pace else {}
    progress = step_logger(console)
    say(
        f"bench: {', '.join(opts.systems)} x {', '.join(opts.scenarios)}, phases 0.5x/1x/2x/10x "
        f"of {target:g} purchases/min, {opts.duration:.0f} s per run -> {out}"
    )
    try:
        for system in opts.systems:
            measured, other = targets[system], targets[_other(system)]
            if opts.isolate and stacks.pause(other, progress):
                cluster_paused = cluster_paused or other is cluster
            say(f"[bold]{system}[/] ({measured.stack}, {measured.spec.local_url()}): up")
            bootstrap.up(measured, progress)
            settled[system] = settle.wait_until_quiet(os.cpu_count() or 1, say)
            images[system] = measured.images().tags
            if measured is cluster:
                cluster_paused = False
            for scenario in opts.scenarios:
                say(f"[bold]{system}[/]: {scenario} flow")
                folder = out / f"{system}-{scenario}"
                profiler = profile.Profiler(measured, folder) if opts.profile else None
                load = LoadOptions(
                    scenario=scenario,
                    shape="phases",
                    target=target,
                    duration=opts.duration,
                    max_users=opts.max_users,
                    out=folder,
                    pace=paces.get(scenario),
                    on_launch=profiler.start if profiler else None,
                )
                try:
                    result = run_loadtest(measured, load, console)
                except Exception as exc:
                    # A run that fails (a failed calibration purchase, a crash in its report)
                    # is a finding about that system; the other runs still tell the rest,
                    # and the cluster is brought back up below.
                    what = str(exc) if isinstance(exc, UserError) else repr(exc)
                    say(f"[bold red]{system} {scenario}: {what}[/]")
                    errors.append(f"{system} {scenario}: {what}")
                    continue
                paces.setdefault(scenario, result.summary.plan.pace_s)
                figures = analysis.system_figures(
                    result.summary, _samples(result.out), os.cpu_count() or 1
                )
                if profiler is not None:
                    found = profiler.result()
                    figures["profile"] = found.to_dict() if found else None
                runs[system][scenario] = figures
        if opts.cores and "cluster" in opts.systems:
            try:
                sweep_result = sweep.run_sweep(
                    cluster, list(opts.cores), opts.sweep_duration, out, console
                )
            except UserError as exc:
                errors.append(f"core sweep: {exc}")
        if opts.lock_hold and "cluster" in opts.systems:
            try:
                holds = locks.measure(cluster, target, opts.lock_hold, out, console)
                lock_holds = [h.to_dict() for h in holds]
            except (UserError, RuntimeError) as exc:
                errors.append(f"lock hold: {exc}")
        if opts.isolate and "baseline" in opts.systems:
            stacks.pause(baseline, progress)
    finally:
        if cluster_paused:
            say(f"bringing {cluster.stack} back up")
            bootstrap.up(cluster, progress)
    if opts.purge_baseline:
        stacks.purge(baseline, progress)
    warnings = []
    if len({tuple(sorted(t.items())) for t in images.values()}) > 1:
        warnings.append("the images changed between the baseline's and the cluster's runs")
    warnings += [
        f"{system} was still busy after its start ({s.busy_cores:g} cores after {s.waited_s:.0f} "
        "s): its first phases include the start"
        for system, s in settled.items()
        if not s.quiet
    ]
    document = build_document(cluster, baseline, opts, target, runs)
    document |= {"images": images, "errors": errors, "warnings": warnings}
    document["lock_hold"] = lock_holds
    document["sweep"] = sweep_result
    document["settled"] = {system: s.to_dict() for system, s in settled.items()}
    (out / "bench.json").write_text(json.dumps(document, indent=2, default=str) + "\n")
    return document, out


def build_document(
    cluster: Cluster,
    baseline: Cluster,
    opts: BenchOptions,
    target: float,
    runs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """bench.json: both systems' runs, their ratios, saturation and the capacity model."""
    host_cores = os.cpu_count() or 1
    spec = cluster.spec
    comparison = {
        scenario: analysis.compare(runs["baseline"][scenario], runs["cluster"][scenario])
        for scenario in opts.scenarios
        if scenario in runs.get("baseline", {}) and scenario in runs.get("cluster", {})
    }
    shop = runs.get("cluster", {}).get("shop") or next(iter(runs.get("cluster", {}).values()), None)
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "host_cores": host_cores,
        "target_per_min": target,
        "duration_s": opts.duration,
        "isolated": opts.isolate,
        "stacks": {"baseline": baseline.stack, "cluster": cluster.stack},
        "cluster_shape": {
            "web": f"{spec.web.replicas} x {spec.web.gunicorn_workers} gunicorn workers "
            f"x {spec.web.gunicorn_threads} threads",
            "worker": f"{spec.worker.replicas} x {spec.worker.concurrency} celery processes",
            "postgres": f"{spec.postgres.nodes} Patroni nodes, "
            f"synchronous={spec.postgres.synchronous}",
            "redis": f"{spec.redis.nodes} nodes + {spec.redis.sentinels} sentinels",
        },
        "baseline_shape": {
            "web": f"1 container: {topology.RECIPE_PROCESSES}, here "
            + " + ".join(map(str, topology.recipe_process_counts(host_cores))),
            "postgres": "1 plain PostgreSQL 15, same parameters",
            "redis": "1 Redis, no replicas, no Sentinel",
        },
        "differences": differences(spec, host_cores),
        "runs": runs,
        "comparison": comparison,
        "saturation": analysis.saturation(shop, spec, host_cores) if shop else None,
        "capacity": analysis.capacity_model(shop, spec, opts.capacity_target)
        if shop and shop["sustained_per_min"]
        else None,
    }


def differences(spec: Any, host_cores: int) -> list[str]:
    """Every setting in which the cluster differs from the baseline (pretix's recipe)."""
    gunicorn, celery = topology.recipe_process_counts(host_cores)
    switched_on = {
        "pretix's metrics endpoint: on in the cluster ([metrics]), off in the baseline "
        "(pretix's default)": spec.web.metrics,
        "gunicorn --preload: on in the cluster ([web] preload: a recycled worker forks "
        "from the loaded app), off in the baseline (pretix's default)": spec.web.preload,
        f"waiting room: the cluster's nginx admits {spec.waiting_room.buyers_per_node} "
        "buyers at once, the rest wait in line ([waiting_room]); the baseline lets every "
        "buyer in": spec.waiting_room.enabled,
    }
    return [
        f"pretix processes: cluster {spec.web.replicas} x {spec.web.gunicorn_workers} gunicorn "
        f"workers x {spec.web.gunicorn_threads} threads and {spec.worker.replicas} x "
        f"{spec.worker.concurrency} celery processes in their own containers, and a cron "
        f"container; baseline {gunicorn} gunicorn sync workers and {celery} celery "
        "processes in one container (pretix's defaults), cron not run",
        f"PostgreSQL: cluster {spec.postgres.nodes} Patroni nodes, synchronous replication "
        f"{'on' if spec.postgres.synchronous else 'off'}, etcd ({spec.etcd.members} members), "
        "HAProxy in front; baseline one server, the same parameters",
        f"Redis: cluster {spec.redis.nodes} nodes and {spec.redis.sentinels} Sentinels, HAProxy "
        "in front; baseline one Redis",
        *(line for line, on in switched_on.items() if on),
        "both: the tool's nginx in front, the same pretix image and pretix.cfg otherwise "
        "(sessions and cache in Redis, persistent database connections, bounded data-tier "
        "timeouts, the connection wait)",
    ]


def _validate(opts: BenchOptions) -> None:
    bad = [s for s in opts.systems if s not in SYSTEMS] + [
        s for s in opts.scenarios if s not in SCENARIOS
    ]
    if bad or not opts.systems or not opts.scenarios:
        raise UserError(
            f"--systems takes {' and/or '.join(SYSTEMS)}, --scenarios {' and/or '.join(SCENARIOS)}"
            f"{f' (not {bad[0]})' if bad else ''}."
        )
    if opts.target is not None and opts.target <= 0:
        raise UserError("--target must be a positive number of purchases per minute.")
    if opts.pace is not None and opts.pace <= 0:
        raise UserError("--pace must be a positive number of seconds, e.g. 3.9.")


def _other(system: str) -> str:
    return "cluster" if system == "baseline" else "baseline"


def _samples(out: Path) -> dict[str, Any] | None:
    path = out / "samples.json"
    return json.loads(path.read_text()) if path.exists() else None
