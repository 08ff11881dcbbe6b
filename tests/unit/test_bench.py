"""The bench's pure parts: the baseline stack, and the arithmetic over load-test summaries."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretix_cluster.bench import analysis, report
from pretix_cluster.bench.runner import differences
from pretix_cluster.bench.stacks import baseline_of
from pretix_cluster.cluster import Cluster
from pretix_cluster.images.build import COMPONENTS, ImageSet
from pretix_cluster.loadtest.shapes import make_plan
from pretix_cluster.loadtest.summary import (
    Accounting,
    Calibration,
    ComponentCpu,
    CpuFigures,
    Distribution,
    Latency,
    LoadSummary,
    PhaseFigures,
    PurchaseCounts,
    Retries,
    RunInfo,
    Throughput,
)
from pretix_cluster.render.stack import dump_stack
from pretix_cluster.render.topology import HA, SINGLE_NODE, single_node_spec
from pretix_cluster.spec import ClusterSpec, TlsSection, parse_spec

IMAGES = ImageSet({c: f"pretix-cluster/{c}:unit" for c in COMPONENTS})


@pytest.fixture
def spec():
    return parse_spec(
        {
            "cluster": {"name": "shop", "url": "https://tickets.example.org"},
            "nginx": {"port": 9000},
            "web": {"gunicorn_workers": 3, "gunicorn_threads": 2},
            "worker": {"concurrency": 5, "memory": "1152M"},
            "postgres": {"max_connections": 150, "shared_buffers": "256MB"},
        }
    )


@pytest.fixture
def base(spec, tmp_path):
    return single_node_spec(spec, tmp_path / "baseline")


@pytest.fixture
def files(base, values):
    return SINGLE_NODE.files(base, values)


@pytest.fixture
def stack(base, files):
    return SINGLE_NODE.stack(base, IMAGES, files)


# --- the baseline stack ---------------------------------------------------------


def test_docker_stack_config_accepts_the_baseline(stack, tmp_path):
    path = tmp_path / "baseline.yml"
    path.write_text(dump_stack(stack))
    result = subprocess.run(
        ["docker", "stack", "config", "-c", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert set(yaml.safe_load(result.stdout)["services"]) == {"pg", "redis", "web", "nginx"}


def test_name_port_url_and_state_derive_from_the_spec(spec, base, tmp_path):
    assert base.stack == "shop-base"
    assert base.nginx.port == spec.nginx.port + 1
    assert base.cluster.url == f"https://127.0.0.1:{spec.nginx.port + 1}"
    assert base.nginx.http_port == spec.nginx.http_port + 1
    assert base.state_path(Path("/elsewhere")) == tmp_path / "baseline"
    explicit = spec.model_copy(
        update={"bench": spec.bench.model_copy(update={"baseline_port": 9500})}
    )
    assert single_node_spec(explicit, tmp_path).nginx.port == 9500


def test_the_baseline_edge_is_the_clusters_tls_or_not(spec, tmp_path):
    plain = spec.model_copy(
        update={"cluster": spec.cluster.model_copy(update={"url": "http://tickets.example.org"})}
    )
    assert single_node_spec(plain, tmp_path).cluster.url.startswith("http://127.0.0.1:")
    # The operator's certificate names the public host: the baseline's comes from its local CA.
    operator = spec.model_copy(
        update={"tls": TlsSection(certificate="shop.pem", key="shop.key", hsts_max_age=60)}
    )
    assert single_node_spec(operator, tmp_path).tls == TlsSection(hsts_max_age=60)


def test_only_nginx_publishes_the_baseline_ports(stack, base):
    published = {name: s["ports"] for name, s in stack["services"].items() if s.get("ports")}
    assert list(published) == ["nginx"]
    assert [p["published"] for p in published["nginx"]] == [
        base.nginx.port,
        base.nginx.http_port,
    ]


def test_one_pretix_container_runs_web_and_worker_with_pretixs_defaults(stack, spec, files):
    cluster = HA.stack(spec, IMAGES, HA.files(spec, _fake_values()))
    app = stack["services"]["web"]
    assert app["command"] == ["standalone"]
    assert app["deploy"]["replicas"] == 1
    assert app["healthcheck"]["test"][-1] == "standalone"
    # never replaced for a probe that queued behind buyers (as pretix's own install)
    assert app["healthcheck"]["retries"] > cluster["services"]["web"]["healthcheck"]["retries"]
    both = cluster["services"]["web"]["environment"] | cluster["services"]["worker"]["environment"]
    # the cluster's environment, less the process counts it tunes: the image's defaults
    # (gunicorn 2 x nproc, celery nproc) are pretix's Docker recipe
    tuned = {
        "PRETIX_GUNICORN_WORKERS",
        "PRETIX_GUNICORN_THREADS",
        "PRETIX_GUNICORN_PRELOAD",
        "PRETIX_CELERY_CONCURRENCY",
    }
    assert app["environment"] == {k: v for k, v in both.items() if k not in tuned}
    assert tuned <= set(both)
    # and pretix's default of no metrics endpoint
    assert "[metrics]" not in files["pretix.cfg"].content


def test_plain_postgres_gets_the_clusters_parameters_and_is_not_patroni(stack, base):
    pg = stack["services"]["pg"]
    assert pg["command"][0] == "pg-standalone"
    options = dict(o.split("=", 1) for o in pg["command"][2::2])
    assert options == {k: str(v) for k, v in base.postgres.server_parameters().items()}
    assert options["max_connections"] == str(base.postgres.max_connections)
    assert "PATRONI_NAME" not in (pg.get("environment") or {})
    assert pg["stop_signal"] == "SIGINT"


def test_plain_redis_has_no_sentinel_and_needs_no_replica(stack, files):
    services = stack["services"]
    assert not any(name.startswith("sentinel") for name in services)
    env = services["redis"]["environment"]
    assert env["REDIS_NODES"] == "redis"
    assert "\nmin-replicas-to-write 0\n" in files["redis.conf"].content
    assert [s for s in env["REDIS_SENTINELS"].split(",") if s] == []


def test_pretix_cfg_points_straight_at_postgres_and_redis(files, values):
    cfg = files["pretix.cfg"].content
    assert "host=pg\n" in cfg
    assert "redis://redis:6379/0" in cfg
    assert "haproxy" not in cfg
    assert "[replica]" not in cfg
    assert values["pg_pretix_password"] in cfg


def test_no_secret_value_in_the_baseline_stack_or_its_configs(stack, files, values):
    rendered = dump_stack(stack) + "".join(f.content for f in files.values() if not f.secret)
    for name, value in values.items():
        assert value not in rendered, name


def test_baseline_cluster_has_its_own_stack_and_state(tmp_path):
    cluster = Cluster(ClusterSpec(), tmp_path)
    baseline = baseline_of(cluster)
    assert baseline.stack == f"{cluster.stack}-base"
    assert baseline.state_dir == cluster.state_dir / "baseline"
    assert baseline.data_tier() == {f"{baseline.stack}_pg", f"{baseline.stack}_redis"}
    assert baseline.spec.local_url() != cluster.spec.local_url()


def _fake_values():
    from pretix_cluster.secrets import SECRET_NAMES

    return {name: f"value-of-{name}-0123456789" for name in SECRET_NAMES}


# --- the arithmetic ------------------------------------------------------------------


def test_cpu_in_window_interpolates_between_samples():
    samples = [(0.0, {"web": 0.0}), (10.0, {"web": 10.0}), (20.0, {"web": 30.0})]
    assert analysis.cpu_in_window(samples, 5.0, 15.0) == {"web": pytest.approx(15.0)}
    assert analysis.cpu_in_window(samples, -5.0, 40.0) == {"web": pytest.approx(30.0)}
    assert analysis.cpu_in_window(samples[:1], 0.0, 10.0) == {}


def _phase(name, mult, per_min, failure_rate, p95, steady=True, window=(0.0, 60.0)):
    return PhaseFigures(
        phase=name,
        multiplier=mult,
        target_per_min=10 * mult,
        offered_per_min=10 * mult,
        buyers=2,
        capped=False,
        window_s=window,
        steady=steady,
        completed=10,
        failed=0,
        failed_sold_out=0,
        completed_per_min=per_min,
        failure_rate=failure_rate,
        purchase_s=Distribution(n=10, p95=p95),
    )


def _summary(phases, cpu_per_purchase, scenario="shop"):
    from pretix_cluster.loadtest.report import sustained

    run = RunInfo(
        run_id="lt1",
        stack="x",
        scenario=scenario,
        shape="phases",
        target_per_min=10.0,
        duration_s=240.0,
        event="lt1",
        calibration=Calibration(purchases=2, completed=2, purchase_s=1.0),
        out="/tmp/x",
    )
    return LoadSummary(
        run=run,
        plan=make_plan("phases", target_per_min=10.0, duration_s=240.0, pace_s=3.0, max_users=9),
        purchases=PurchaseCounts(
            attempted=100,
            completed=100,
            failed=0,
            interrupted=0,
            rejected_sold_out=0,
            failure_rate=0.0,
            failure_rate_excluding_sold_out=0.0,
        ),
        throughput=Throughput(
            test_seconds=240.0,
            completed_per_min_overall=25.0,
            sustained=sustained(phases),
            phases=tuple(phases),
        ),
        latency_s=Latency(purchase=Distribution(n=100, p95=3.0)),
        retries=Retries(),
        cpu=CpuFigures(
            generator_cpu_s=48.0,
            generator_cpu_s_per_purchase=0.48,
            generator_cores_avg=0.2,
            cluster_cpu_s=240.0,
            cluster_cpu_s_per_purchase=sum(cpu_per_purchase.values()),
            cluster_cpu_s_per_attempt=None,
            cluster_cores_avg=1.0,
            cluster_by_component={
                c: ComponentCpu(
                    cpu_s=v * 100,
                    cpu_s_per_purchase=v,
                    cpu_s_per_purchase_net_of_idle=v,
                    cores_avg=v * 100 / 240,
                    idle_cores=0.0,
                )
                for c, v in cpu_per_purchase.items()
            },
        ),
        accounting=Accounting(ok=True),
    )


def _figures(phases, cpu=None, samples=None):
    cpu = cpu or {"web": 0.6, "worker": 0.3, "pg": 0.2}
    return analysis.system_figures(_summary(phases, cpu), samples, 2)


def test_sustained_is_the_best_phase_within_one_percent_and_ratios_divide():
    base = _figures(
        [
            _phase("0.5x", 0.5, 5.0, 0.0, 2.0),
            _phase("1x", 1, 9.0, 0.0, 4.0),
            _phase("2x", 2, 12.0, 0.05, 9.0),
        ]
    )
    clus = _figures(
        [
            _phase("0.5x", 0.5, 5.0, 0.0, 1.0),
            _phase("1x", 1, 10.0, 0.0, 2.0),
            _phase("2x", 2, 18.0, 0.01, 3.0),
        ]
    )
    assert base["sustained_per_min"] == 9.0 and clus["sustained_per_min"] == 18.0
    cmp_ = analysis.compare(base, clus)
    assert cmp_["sustained_per_min"] == 2.0
    # p95 is compared at the heaviest phase both held: the same offered load
    assert cmp_["p95_phase"] == "1x" and cmp_["p95_s"] == 0.5
    assert [p["phase"] for p in cmp_["phases"]] == ["0.5x", "1x", "2x"]
    assert analysis.ratio(1.0, 0) is None and analysis.ratio(None, 2.0) is None


def test_phase_cores_come_from_the_samples_in_the_steady_window():
    samples = {"t_start": 100.0, "cluster": [[100.0, {"web": 0.0}], [160.0, {"web": 60.0}]]}
    fig = _figures([_phase("1x", 1, 10.0, 0.0, 2.0, window=(0.0, 30.0))], samples=samples)
    assert fig["phases"][0]["cores_by_component"] == {"web": 1.0}


def _with_cores(cores, mult=2):
    return {
        "phases": [
            {"steady": True, "multiplier": mult, "phase": f"{mult}x", "cores_by_component": cores}
        ],
        "generator_cores_avg": 0.1,
    }


def test_first_to_saturate_is_the_fullest_process_pool_unless_the_host_is_busy():
    spec = ClusterSpec.model_validate({"web": {"replicas": 2, "gunicorn_workers": 2}})
    # web may use min(2 cores, 4 processes) = 2 cores, worker min(2, 4) = 2
    sat = analysis.saturation(_with_cores({"web": 0.4, "worker": 0.9, "pg": 0.1}), spec, 2)
    assert sat["first"] == "worker" and sat["host_busy"] < analysis.HOST_BUSY
    one = ClusterSpec.model_validate({"web": {"replicas": 1, "gunicorn_workers": 1}})
    assert analysis.saturation(_with_cores({"web": 0.8, "worker": 0.5}), one, 2)["first"] == "web"
    busy = analysis.saturation(_with_cores({"web": 1.2, "worker": 0.5, "pg": 0.2}), spec, 2)
    assert busy["first"] == "host" and busy["largest"] == "web" and busy["host_bound"]


def test_the_hosts_busy_cores_count_what_the_cluster_does_not_show():
    spec = ClusterSpec.model_validate({"web": {"replicas": 2, "gunicorn_workers": 2}})
    figures = _with_cores({"web": 0.9, "worker": 0.4, "pg": 0.2})
    # the cluster's containers 1.5 cores, the generator 0.1: 80 %, below the limit ...
    assert not analysis.saturation(figures, spec, 2)["host_bound"]
    # ... but the host was 1.8 cores busy (Docker, the kernel): the machine is the limit
    figures["phases"][0] |= {"host_cores_busy": 1.8, "generator_cores": 0.1}
    sat = analysis.saturation(figures, spec, 2)
    assert sat["first"] == "host" and sat["host_cores_busy"] == 1.8
    assert "other 0.20" in sat["why"]


def test_phase_rows_take_host_and_generator_cores_from_their_samples():
    samples = {
        "t_start": 100.0,
        "cluster": [[100.0, {"web": 0.0}], [160.0, {"web": 60.0}]],
        "generator": [[100.0, 0.0], [160.0, 6.0]],
        "host": [[100.0, 1000.0], [160.0, 1108.0]],
    }
    fig = _figures([_phase("1x", 1, 10.0, 0.0, 2.0, window=(0.0, 30.0))], samples=samples)
    row = fig["phases"][0]
    assert (row["host_cores_busy"], row["generator_cores"]) == (1.8, 0.1)


def test_capacity_model_takes_the_larger_of_cpu_and_process_slots():
    spec = ClusterSpec.model_validate(
        {"web": {"replicas": 2, "gunicorn_workers": 2}, "worker": {"replicas": 2, "concurrency": 2}}
    )
    fig = {"cpu_s_per_purchase": {"web": 0.6, "worker": 0.3, "pg": 0.15}, "sustained_per_min": 40.0}
    cap = analysis.capacity_model(fig, spec, 800.0, utilisation=0.5)
    # 800/min = 13.33/s; web 13.33 * 0.6 / (0.5 * 2) = 8 -> 8 replicas by CPU;
    # 4 processes * 800 / 40 / 2 = 40 replicas by process slots
    assert cap["replicas"]["web"] == {
        "by_cpu": 8,
        "by_process_slots": 40,
        "replicas": 40,
        "processes_per_replica": 2,
    }
    assert cap["cores_by_component"]["pg"] == pytest.approx(4.0)
    assert cap["cores_total"] == pytest.approx(800 / 60 * 1.05 / 0.5, abs=0.02)
    assert any("replicas by CPU" in line for line in cap["arithmetic"])


def test_reports_render_every_table():
    phases = [_phase("0.5x", 0.5, 5.0, 0.0, 2.0), _phase("1x", 1, 9.0, 0.0, 4.0)]
    runs = {"baseline": {"shop": _figures(phases)}, "cluster": {"shop": _figures(phases)}}
    doc = {
        "host_cores": 2,
        "target_per_min": 10,
        "duration_s": 60,
        "isolated": True,
        "cluster_shape": {"web": "2 x 2"},
        "baseline_shape": {"web": "1"},
        "runs": runs,
        "comparison": {"shop": analysis.compare(runs["baseline"]["shop"], runs["cluster"]["shop"])},
        "saturation": None,
        "capacity": analysis.capacity_model(runs["cluster"]["shop"], ClusterSpec(), 800.0),
        "settled": {
            "baseline": {"waited_s": 20.0, "busy_cores": 0.1, "quiet": True},
            "cluster": {"waited_s": 240.0, "busy_cores": 0.9, "quiet": False},
        },
    }
    md = report.markdown(doc)
    assert (
        "Measured once settled after its start: baseline after 20 s (0.1 cores busy); "
        "cluster after 240 s (0.9 cores busy, NOT quiet)." in md
    )
    # the answer leads: the ratio, then what held at overload
    assert md.splitlines()[2].startswith(
        "- shop: the cluster sustained 9.0 purchases/min, the baseline 9.0: 1.00x"
    )
    assert "cluster shop at overload: 1x completed 100% of the best phase's rate" in md
    assert "## shop flow: baseline vs cluster" in md
    assert "| sustained (≤1 % failures) |  | 9.0 (1x) |" in md
    assert "capacity for 800 purchases/min" in md
    assert "<table>" in report.html(doc)


def test_overload_hold_compares_the_heaviest_phase_with_the_best():
    phases = [_phase("1x", 1, 60.0, 0.0, 2.0), _phase("2x", 2, 100.0, 0.0, 4.0)]
    phases.append(_phase("10x", 10, 90.0, 0.0, 40.0))
    hold = _figures(phases)["overload"]
    assert (hold["phase"], hold["best_phase"], hold["ratio"]) == ("10x", "2x", 0.9)
    short = _phase("10x", 10, 40.0, 0.0, 40.0, steady=False)
    assert _figures([*phases[:2], short])["overload"] is None


def test_a_profiled_run_says_py_spy_slowed_its_phase():
    phases = [_phase("1x", 1, 9.0, 0.0, 4.0), _phase("2x", 2, 12.0, 0.0, 6.0)]
    figures = _figures(phases)
    figures["profile"] = {"phase": "2x", "seconds": 40, "containers": [], "statements": []}
    doc = {
        "host_cores": 2,
        "target_per_min": 10,
        "duration_s": 60,
        "isolated": True,
        "cluster_shape": {},
        "baseline_shape": {},
        "runs": {"cluster": {"shop": figures}},
        "comparison": {},
    }
    assert "Profiled: py-spy ran during 2x" in report.markdown(doc)


def test_a_pace_that_is_not_positive_is_refused_before_anything_is_made(tmp_path):
    out = tmp_path / "bench"
    spec = tmp_path / "none.toml"
    result = subprocess.run(
        [sys.executable, "-m", "pretix_cluster", "bench", "--pace", "0", "--out", out, "-f", spec],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    assert result.returncode == 2, result.stderr
    assert "--pace must be a positive number" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_the_report_names_the_recipes_processes_and_the_clusters_from_the_spec(spec):
    found = differences(spec, host_cores=2)
    assert found[0] == (
        "pretix processes: cluster 2 x 3 gunicorn workers x 2 threads and 2 x 5 celery "
        "processes in their own containers, and a cron container; baseline 4 gunicorn sync "
        "workers and 2 celery processes in one container (pretix's defaults), cron not run"
    )
    assert any("metrics endpoint: on in the cluster" in d for d in found)
    quiet = differences(parse_spec({"web": {"metrics": False}}), host_cores=3)
    assert "baseline 6 gunicorn sync workers and 3 celery" in quiet[0]
    assert not any("metrics" in d for d in quiet)


def test_only_the_cluster_gets_the_waiting_room_and_the_report_says_so(tmp_path):
    room = parse_spec({"waiting_room": {"buyers_per_node": 6}})
    assert not single_node_spec(room, tmp_path).waiting_room.enabled  # pretix's recipe
    assert any(
        "waiting room: the cluster's nginx admits 6 buyers at once" in d
        for d in differences(room, host_cores=2)
    )
    assert not any("waiting room" in d for d in differences(parse_spec({}), host_cores=2))


def test_the_cluster_preloads_pretix_by_the_spec_and_the_report_says_so():
    preloading = HA.stack(ClusterSpec(), IMAGES, HA.files(ClusterSpec(), _fake_values()))
    assert preloading["services"]["web"]["environment"]["PRETIX_GUNICORN_PRELOAD"] == "1"
    assert any("gunicorn --preload: on in the cluster" in d for d in differences(ClusterSpec(), 2))
    off = parse_spec({"web": {"preload": False}})
    assert (
        HA.stack(off, IMAGES, HA.files(off, _fake_values()))["services"]["web"]["environment"][
            "PRETIX_GUNICORN_PRELOAD"
        ]
        == "0"
    )
    assert not any("preload" in d for d in differences(off, 2))
