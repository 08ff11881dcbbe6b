"""Orchestration of one load run: prepare, run Locust, measure, account, report.

1. the run's own event (a clone of the demo event, quota sized for the run, or
   small for ``oversell``) through the REST API;
2. idle CPU of the cluster for a few seconds (the floor under every figure);
3. calibration: a few sequential purchases measure the purchase time ``D``
   that turns purchases/min into buyers (see :mod:`shapes`);
4. Locust as a child process (``python -m locust``), headless with CSV output
   or with its web UI on 127.0.0.1; ``--processes`` forks more generators.
   Bounded: the shape ends the test, and a hard deadline stops the child;
5. while it runs: cluster CPU samples, generator CPU, live progress (rich);
6. the accounting against the database, then the JSON summary and HTML report.

Locust runs as a child so that its CPU (``RUSAGE_CHILDREN``) is the generator's
and nothing else's, and so that gevent's monkey-patching stays out of this
process, which talks to Docker and draws the progress display.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import importlib.util
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest import accounting as accounting_module
from pretix_cluster.loadtest import cpu as cpu_module
from pretix_cluster.loadtest import flows, report, shapes
from pretix_cluster.loadtest.config import CONFIG_ENV, RunConfig
from pretix_cluster.loadtest.ledger import (
    TEST_START,
    LedgerTail,
    LedgerWriter,
    read_ledger,
    start_ledger,
)
from pretix_cluster.loadtest.pretixapi import ApiError, PretixApi
from pretix_cluster.loadtest.summary import Accounting, LoadSummary
from pretix_cluster.shop_tls import ShopTrust

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
USER_CLASSES = {"shop": "ShopBuyer", "api": "ApiBuyer"}
OVERSELL_QUOTA = 30
IDLE_SAMPLE_S = 5.0
SETTLE_S = 5.0  # orders placed by tasks still in flight at the end land before the accounting
SHOP_ANSWER_WAIT_S = 30.0
ORDERS_FILE = "orders.json"  # the event's orders as pretix answered them at the accounting


@dataclasses.dataclass
class LoadOptions:
    """What the operator asked for (the CLI's options)."""

    scenario: str = "shop"
    shape: str = "steady"
    target: float = 800.0  # purchases/min at 1x
    duration: float = 120.0  # seconds of load (the shape's length)
    users: int | None = None  # buyers at 1x, instead of deriving them from the target
    max_users: int = 500
    think: float | None = None  # seconds; default D/2
    oversell: bool = False
    quota: int | None = None
    out: Path | None = None
    ui: bool = False
    web_port: int = 8089
    processes: int = 0  # extra forked Locust workers (0: one process)
    assets: bool = True
    calibration_purchases: int = 2
    stop_timeout: float = 60.0
    keep_live: bool = False
    timeout: float = 60.0
    quiet: bool = False
    # Seconds between a buyer slot's purchase starts, instead of the calibrated one: the
    # bench gives the second system the first one's, so both see the same buyers.
    pace: float | None = None
    # Called with the plan and the time Locust starts (bench --profile samples a phase).
    on_launch: Callable[[shapes.Plan, float], None] | None = None


@dataclasses.dataclass
class RunResult:
    summary: LoadSummary
    out: Path

    @property
    def accounting(self) -> Accounting | None:
        return self.summary.accounting


def _now_id() -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%d-%H%M%S")
    run_id = f"lt{now.strftime('%m%d%H%M%S')}{secrets.token_hex(2)}"
    return stamp, run_id


def _validate(opts: LoadOptions) -> None:
    if opts.scenario not in USER_CLASSES:
        raise UserError(f"--scenario must be one of {', '.join(USER_CLASSES)}.")
    if opts.shape not in shapes.SHAPES:
        raise UserError(f"--shape must be one of {', '.join(shapes.SHAPES)}.")
    if opts.target <= 0:
        raise UserError("--target must be a positive number of purchases per minute.")
    if not 10 <= opts.duration <= 24 * 3600:
        raise UserError("--duration must be between 10 seconds and 24 hours.")
    if opts.users is not None and opts.users < 1:
        raise UserError("--users must be at least 1.")
    if opts.quota is not None and opts.quota < 1:
        raise UserError("--quota must be at least 1.")
    if importlib.util.find_spec("locust") is None:
        raise UserError("Locust is not installed: run `pip install -e '.[load]'` (or `make up`).")


def _check_shop(
    base_url: str, host: str | None, trust: ShopTrust, wait_s: float = SHOP_ANSWER_WAIT_S
) -> None:
    """The shop answers /healthcheck/ with 200 within ``wait_s`` (asked every 2 s): right
    after `up`, or while Swarm restarts an nginx, it can refuse for a few seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            r = httpx.get(
                base_url + "/healthcheck/",
                headers={"Host": host} if host else {},
                timeout=10,
                verify=trust.verify(),
            )
            problem = None if r.status_code == 200 else f"/healthcheck/ answered {r.status_code}"
        except httpx.HTTPError as e:
            problem = type(e).__name__
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise UserError(
                f"the shop at {base_url} did not answer healthy within {wait_s:g} s "
                f"({problem}): is the cluster up? (`pretix-cluster status`)"
            )
        time.sleep(2)


class Progress:
    """Live figures from the ledger (exact) and Locust's history CSV (buyers)."""

    def __init__(self, ledger_dir: Path, history: Path, plan: shapes.Plan):
        self.tail = LedgerTail(ledger_dir)
        self.history = history
        self.plan = plan
        self.done: deque[tuple[float, float]] = deque()  # (t1, seconds) of the last minute
        self.completed = 0
        self.failed: Counter[str] = Counter()
        self.retries = 0
        self.users = 0
        self._hist_offset = 0

    def update(self) -> None:
        for r in self.tail.new_records():
            if r.get("phase") == "calibration":
                continue
            self.retries += r.get("retries") or 0
            if r.get("outcome") == "completed":
                self.completed += 1
                self.done.append((r["t1"], r["seconds"]))
            else:
                self.failed[r.get("kind") or r.get("outcome") or "?"] += 1
        horizon = time.time() - 60
        while self.done and self.done[0][0] < horizon:
            self.done.popleft()
        if self.history.exists():
            with self.history.open("rb") as f:
                f.seek(self._hist_offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1
            for line in chunk[:end].decode("utf-8", "replace").splitlines():
                cells = line.split(",")
                if len(cells) > 3 and cells[3] == "Aggregated" and cells[1].isdigit():
                    self.users = int(cells[1])
            self._hist_offset += end

    def table(self, elapsed: float, gen_cores: float, cluster_cores: float) -> Table:
        phase = next((p for p in self.plan.phases if elapsed < p.end_s), self.plan.phases[-1])
        window = min(60.0, max(elapsed, 1.0))
        p95 = report.percentile([s for _, s in self.done], 95)
        t = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        cols = (
            "time",
            "phase",
            "buyers",
            "done",
            "/min",
            "p95 s",
            "failed",
            "retries",
            "CPU gen|cl",
        )
        for col in cols:
            t.add_column(col, justify="right", no_wrap=True)
        fails = sum(self.failed.values())
        top = ",".join(f"{k[:12]} {v}" for k, v in self.failed.most_common(2))
        t.add_row(
            f"{elapsed:.0f}/{self.plan.duration_s:.0f}s",
            phase.name,
            str(self.users),
            str(self.completed),
            f"{len(self.done) / window * 60:.0f}",
            "-" if p95 is None else f"{p95:.1f}",
            f"{fails}" + (f" ({top})" if top else ""),
            str(self.retries),
            f"{gen_cores:.2f}|{cluster_cores:.2f}",
        )
        return t


@dataclasses.dataclass(frozen=True)
class _Shop:
    """Where the run buys: the demo shop of ``cluster`` as this machine reaches it."""

    info: dict[str, Any]
    token: str
    token_file: Path
    base_url: str
    host: str | None  # the Host header nginx expects, when it differs from base_url's
    trust: ShopTrust

    def api(self, timeout: float) -> PretixApi:
        return PretixApi(
            self.base_url,
            self.token,
            self.info["organizer"],
            host_header=self.host,
            timeout=timeout,
            verify=self.trust.verify(),
        )


@dataclasses.dataclass
class _LocustRun:
    """What running Locust gave: its exit code, the times and the CPU around it."""

    rc: int
    t_launch: float
    t_end: float
    generator_samples: list[tuple[float, float]]
    host_samples: list[tuple[float, float]]  # (time, the host's busy CPU-s since boot)
    generator_cpu_s: float
    host_busy_s: float
    orchestrator_cpu0: float


def run_loadtest(cluster: Cluster, opts: LoadOptions, console: Console | None = None) -> RunResult:
    """One complete load run against ``cluster``; see the module doc."""
    console = console or Console(stderr=True)
    say = (lambda *a: None) if opts.quiet else console.print
    _validate(opts)
    shop = _reach_shop(cluster)
    stamp, run_id = _now_id()
    out = (opts.out or Path("results") / stamp).resolve()
    out.mkdir(parents=True, exist_ok=True)

    api = shop.api(opts.timeout)
    created: str | None = None  # the run's event, taken off sale at the end whatever happens
    try:
        cfg = _prepare_event(api, cluster, shop, opts, run_id, out, say)
        created = cfg.event
        cluster_cpu = cpu_module.ClusterCpu(cluster.client, cluster.spec.stack)
        idle_rate = _idle_cpu(cluster, say)
        calibration = _calibrate(cfg, opts, shop.token, say)
        plan = _plan(api, cfg, opts, calibration, say)
        config_path = out / "config.json"
        cfg.write(config_path)
        meta = _meta(cluster, opts, cfg, calibration, out)
        run = _run_measured(cfg, opts, config_path, out, plan, cluster_cpu, console)
        time.sleep(SETTLE_S)
        ledger = read_ledger(Path(cfg.ledger_dir))
        t_start = _test_start(out, ledger, run.t_launch)
        acc = _account(api, cfg, ledger, say)
    finally:
        if created and not opts.keep_live:
            with contextlib.suppress(ApiError, httpx.HTTPError):
                api.close_event(created)
        api.close()

    cpu = _cpu_figures(run, cluster_cpu, idle_rate)
    meta["locust_exit_code"] = run.rc
    return _report(out, meta, plan, ledger, t_start, acc, cpu, run, cluster_cpu)


def _reach_shop(cluster: Cluster) -> _Shop:
    """The demo shop, its API token and how to reach it; refuses when it is not healthy."""
    spec = cluster.spec
    info = cluster.shop_info()
    token = cluster.api_token()
    token_file = cluster.secrets.path("pretix_api_token")
    if not token:
        raise UserError("the cluster has no API token yet: run `pretix-cluster up` first.")
    base_url = spec.local_url()
    host = spec.shop_netloc if spec.shop_netloc != base_url.split("://", 1)[1] else None
    trust = cluster.shop_trust()
    _check_shop(base_url, host, trust)
    return _Shop(info, token, token_file, base_url, host, trust)


def _prepare_event(
    api: PretixApi,
    cluster: Cluster,
    shop: _Shop,
    opts: LoadOptions,
    run_id: str,
    out: Path,
    say,
) -> RunConfig:
    """The run's own event, a clone of the demo event, and the run's config pointing at it."""
    info = shop.info
    quota = opts.quota or (OVERSELL_QUOTA if opts.oversell else int(info["quota_size"]))
    say(f"run {run_id}: creating event {run_id} (clone of {info['event']}, quota {quota})")
    try:
        ev = api.clone_event(
            info["event"],
            run_id,
            f"Load test {run_id}",
            quota_size=quota,
            item_id=int(info["item_id"]),
            quota_id=int(info["quota_id"]),
        )
    except (ApiError, httpx.HTTPError) as e:
        raise UserError(f"could not create the run's event through the API: {e}") from e
    return RunConfig(
        run_id=run_id,
        scenario=opts.scenario,  # type: ignore[arg-type]
        base_url=shop.base_url,
        host_header=shop.host,
        organizer=info["organizer"],
        event=ev["event"],
        item_id=ev["item_id"],
        quota_id=ev["quota_id"],
        quota_size=ev["quota_size"],
        ledger_dir=str(start_ledger(out / "ledger")),
        plan={},
        pace_s=1.0,
        token_file=str(shop.token_file),
        public_origin=cluster.spec.cluster.url if shop.host else None,
        ca_file=shop.trust.ca_file,
        server_name=shop.trust.server_name,
        fetch_assets=opts.assets,
        timeout_s=opts.timeout,
    )


def _idle_cpu(cluster: Cluster, say) -> dict[str, float]:
    """CPU-seconds per second of each component of the idle cluster: the floor under figures."""
    say(f"measuring the idle cluster for {IDLE_SAMPLE_S:.0f} s")
    idle_cpu = cpu_module.ClusterCpu(cluster.client, cluster.spec.stack)
    idle_cpu.sample()
    time.sleep(IDLE_SAMPLE_S)
    idle_cpu.sample()
    return {c: s / IDLE_SAMPLE_S for c, s in idle_cpu.by_component().items()}


def _plan(
    api: PretixApi, cfg: RunConfig, opts: LoadOptions, calibration: dict[str, Any], say
) -> shapes.Plan:
    """The load plan from the calibrated purchase time (or the pace given); the quota grows
    to fit its demand."""
    pace = opts.pace or shapes.pace_for(calibration["purchase_s"], opts.think)
    target = opts.users * 60 / pace if opts.users else opts.target
    plan = shapes.make_plan(
        opts.shape,
        target_per_min=target,
        duration_s=opts.duration,
        pace_s=pace,
        max_users=max(opts.max_users, opts.users or 1),
    )
    _fit_quota(api, cfg, opts, plan.expected_purchases())
    cfg.plan = plan.to_dict()
    cfg.pace_s = pace
    for line in shapes.describe(plan):
        say(f"  {line}")
    return plan


def _fit_quota(api: PretixApi, cfg: RunConfig, opts: LoadOptions, expected: float) -> None:
    """An oversell run needs more demand than quota; any other run must never run out."""
    quota = cfg.quota_size
    if opts.oversell and expected <= quota * 1.2:
        raise UserError(
            f"--oversell needs more demand than the quota ({quota}), but the plan offers only "
            f"~{expected:.0f} purchases: raise --target/--duration or lower --quota."
        )
    if not opts.oversell and not opts.quota and expected * 1.5 > quota:
        cfg.quota_size = int(expected * 2) + 100
        api.resize_quota(cfg.event, cfg.quota_id, cfg.quota_size)


def _meta(
    cluster: Cluster,
    opts: LoadOptions,
    cfg: RunConfig,
    calibration: dict[str, Any],
    out: Path,
) -> dict[str, Any]:
    return {
        "run_id": cfg.run_id,
        "stack": cluster.spec.stack,
        "scenario": opts.scenario,
        "shape": opts.shape,
        "target_per_min": opts.target,
        "users_override": opts.users,
        "duration_s": opts.duration,
        "oversell": opts.oversell,
        "event": cfg.event,
        "quota_size": cfg.quota_size,
        "base_url": cfg.base_url,
        "processes": opts.processes,
        "assets": opts.assets,
        "calibration": calibration,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
        "out": str(out),
    }


def _run_measured(
    cfg: RunConfig,
    opts: LoadOptions,
    config_path: Path,
    out: Path,
    plan: shapes.Plan,
    cluster_cpu: cpu_module.ClusterCpu,
    console: Console,
) -> _LocustRun:
    """Locust from start to end, with the CPU of the generator, the host and the cluster."""
    orchestrator_cpu0 = cpu_module.self_rusage_seconds()
    children0 = cpu_module.children_rusage_seconds()
    host0 = cpu_module.host_cpu()
    cluster_cpu.sample()
    t_launch = time.time()
    if opts.on_launch is not None:
        opts.on_launch(plan, t_launch)
    watch, rc = _run_locust(cfg, opts, config_path, out, plan, cluster_cpu, console)
    t_end = time.time()
    cluster_cpu.sample()
    generator_cpu = cpu_module.children_rusage_seconds() - children0
    host1 = cpu_module.host_cpu()
    return _LocustRun(
        rc=rc,
        t_launch=t_launch,
        t_end=t_end,
        generator_samples=watch.generator_samples,
        host_samples=watch.host_samples,
        generator_cpu_s=generator_cpu,
        host_busy_s=host1[0] - host0[0],
        orchestrator_cpu0=orchestrator_cpu0,
    )


def _account(api: PretixApi, cfg: RunConfig, ledger: list[dict[str, Any]], say) -> dict[str, Any]:
    """The event's orders against the ledger; an unreachable API is a failed accounting."""
    say("accounting: the event's orders against the buyers' ledger")
    try:
        return accounting_module.account(
            api,
            run_id=cfg.run_id,
            event=cfg.event,
            item_id=cfg.item_id,
            quota_id=cfg.quota_id,
            quota_size=cfg.quota_size,
            ledger=ledger,
            evidence=Path(cfg.ledger_dir).parent / ORDERS_FILE,
        )
    except (ApiError, httpx.HTTPError) as e:
        return {"ok": False, "problems": [f"accounting failed: {e}"], "error": str(e)}


def _cpu_figures(
    run: _LocustRun, cluster_cpu: cpu_module.ClusterCpu, idle_rate: dict[str, float]
) -> dict[str, Any]:
    return {
        "generator_cpu_s": run.generator_cpu_s,
        "cluster_by_component": cluster_cpu.by_component(),
        "cluster_by_service": cluster_cpu.by_service(),
        "idle_per_s_by_component": idle_rate,
        "host_busy_s": run.host_busy_s,
        "host_cores": os.cpu_count(),
        "orchestrator_cpu_s": cpu_module.self_rusage_seconds() - run.orchestrator_cpu0,
        "containers": cluster_cpu.containers(),
        "method": "cgroup files"
        if any(cpu_module.cgroup_cpu_seconds(c) is not None for c in list(cluster_cpu.last)[:1])
        else "docker stats API",
    }


def _report(
    out: Path,
    meta: dict[str, Any],
    plan: shapes.Plan,
    ledger: list[dict[str, Any]],
    t_start: float,
    acc: dict[str, Any],
    cpu: dict[str, Any],
    run: _LocustRun,
    cluster_cpu: cpu_module.ClusterCpu,
) -> RunResult:
    """The JSON summary, the HTML report and the CPU samples, written to ``out``."""
    t_end = run.t_end
    gen_samples = run.generator_samples
    stats = report.read_csv(out / "locust_stats.csv")
    history = report.read_csv(out / "locust_stats_history.csv")
    summary = report.build_summary(
        meta=meta,
        plan=plan,
        ledger=ledger,
        t_start=t_start,
        t_end=t_end,
        accounting=acc,
        cpu=cpu,
        locust_stats=stats,
    )
    html = report.render_html(
        summary,
        plan,
        report.load_records(ledger),
        t_start,
        t_end,
        history,
        cluster_cpu.samples,
        gen_samples,
    )
    samples = {
        "t_start": t_start,
        "t_end": t_end,
        "cluster": cluster_cpu.samples,
        "generator": gen_samples,
        "host": run.host_samples,
    }
    report.write_outputs(out, summary, html, samples)
    return RunResult(summary=summary, out=out)


def _calibrate(cfg: RunConfig, opts: LoadOptions, token: str, say) -> dict[str, Any]:
    """A few sequential purchases: the purchase time D on this cluster, and a smoke test."""
    n = max(1, opts.calibration_purchases + (1 if cfg.scenario == "api" else 0))
    writer = LedgerWriter(cfg.ledger_dir)
    client = flows.make_client(cfg)
    flow: flows.ShopFlow | flows.ApiFlow = (
        flows.ShopFlow(cfg, client, flows.NullReporter())
        if cfg.scenario == "shop"
        else flows.ApiFlow(cfg, client, token, flows.NullReporter())
    )
    times, last = [], None
    try:
        for _ in range(n):
            record = flow.purchase(flows.Identity.new(cfg.run_id))
            record["phase"] = "calibration"
            writer.write(record)
            last = record
            if record["outcome"] == "completed":
                times.append(record["seconds"])
    finally:
        client.close()
        writer.close()
    if not times:
        assert last is not None
        raise UserError(
            f"a calibration purchase failed at {last.get('step')} ({last.get('kind')}): "
            f"{(last.get('message') or '')[:200]}"
        )
    d = statistics.median(times)
    say(f"calibration: {len(times)}/{n} purchases, median {d:.2f} s")
    return {"purchases": n, "completed": len(times), "purchase_s": round(d, 3)}


def _test_start(out: Path, ledger: list[dict[str, Any]], fallback: float) -> float:
    marker = out / "ledger" / TEST_START
    if marker.exists():
        try:
            return float(marker.read_text().strip())
        except ValueError:
            pass
    starts = [r["t0"] for r in report.load_records(ledger)]
    return min(starts) if starts else fallback


def locust_command(cfg: RunConfig, opts: LoadOptions, out: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--host",
        cfg.base_url,
        "--csv",
        str(out / "locust"),
        "--csv-full-history",
        "--html",
        str(out / "locust.html"),
        "--stop-timeout",
        str(int(opts.stop_timeout)),
        "--logfile",
        str(out / "locust.log"),
        "--loglevel",
        "INFO",
        "--exit-code-on-error",
        "0",
    ]
    if opts.ui:
        cmd += [
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(opts.web_port),
            "--autostart",
            "--autoquit",
            "60",
        ]
    else:
        cmd += ["--headless", "--only-summary"]
    if opts.processes:
        cmd += ["--processes", str(opts.processes)]
    cmd.append(USER_CLASSES[cfg.scenario])
    return cmd


def _run_locust(
    cfg: RunConfig,
    opts: LoadOptions,
    config_path: Path,
    out: Path,
    plan: shapes.Plan,
    cluster_cpu: cpu_module.ClusterCpu,
    console: Console,
) -> tuple[_LocustWatch, int]:
    """Run Locust to the end of the plan (or the hard deadline); returns its samples."""
    env = {**os.environ, CONFIG_ENV: str(config_path)}
    cmd = locust_command(cfg, opts, out)
    (out / "locust_command.txt").write_text(" ".join(cmd) + "\n")
    progress = Progress(Path(cfg.ledger_dir), out / "locust_stats_history.csv", plan)
    with (out / "locust.out").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if opts.ui:
            console.print(
                f"Locust web UI: http://127.0.0.1:{opts.web_port}/ (the test starts at once, "
                f"ends with the plan after {plan.duration_s:.0f} s; the UI stays 60 s longer)"
            )
        watch = _LocustWatch(proc, cluster_cpu, progress)
        try:
            _watch_until_done(watch, opts, plan, console)
        except KeyboardInterrupt:
            console.print("interrupted: stopping Locust, then accounting for what ran")
            _stop(proc)
        rc = proc.wait()
    return watch, rc


class _LocustWatch:
    """Samples while Locust runs: generator, host and cluster CPU, and the progress."""

    def __init__(
        self, proc: subprocess.Popen, cluster_cpu: cpu_module.ClusterCpu, progress: Progress
    ):
        self.proc, self.cluster_cpu, self.progress = proc, cluster_cpu, progress
        self.t0 = time.time()
        self.generator_samples: list[tuple[float, float]] = []
        self.host_samples: list[tuple[float, float]] = []
        self._last = (self.t0, 0.0, 0.0)  # (time, generator CPU-s, cluster CPU-s)

    def sample(self) -> Table:
        now = time.time()
        self.cluster_cpu.sample()
        gen = cpu_module.tree_cpu_seconds(self.proc.pid)
        self.generator_samples.append((now, gen))
        self.host_samples.append((now, cpu_module.host_cpu()[0]))
        cl = sum(self.cluster_cpu.by_component().values())
        last_t, last_gen, last_cl = self._last
        dt_s = now - last_t or 1.0
        self._last = (now, gen, cl)
        self.progress.update()
        return self.progress.table(now - self.t0, (gen - last_gen) / dt_s, (cl - last_cl) / dt_s)


def _watch_until_done(
    watch: _LocustWatch, opts: LoadOptions, plan: shapes.Plan, console: Console
) -> None:
    """Every 2 s a sample and the live table, until Locust ends or its hard deadline."""
    deadline_s = plan.duration_s + opts.stop_timeout + 90 + (60 if opts.ui else 0)
    with Live(console=console, refresh_per_second=1, transient=False, auto_refresh=False) as live:
        while watch.proc.poll() is None:
            time.sleep(2.0)
            if time.time() - watch.t0 > deadline_s:
                console.print("[yellow]deadline reached: stopping Locust[/]")
                _stop(watch.proc)
                return
            table = watch.sample()
            if not opts.quiet:
                live.update(table, refresh=True)


def _stop(proc: subprocess.Popen) -> None:
    """Stop our own Locust child: SIGINT (clean stop, CSV written), then SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
