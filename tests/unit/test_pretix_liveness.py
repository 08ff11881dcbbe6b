"""The pretix image's liveness check for workers, on a /proc recorded in a real worker container.

tests/fixtures/pretix/proc-worker holds /proc/<pid>/{stat,cmdline} of a running
worker task (tini, celery's main process and its two pool processes), copied with
`docker exec <worker> cat`.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from pretix_cluster.daemons.pretix import LIVE_PATH
from pretix_cluster.images.build import COMPONENTS, ImageSet
from pretix_cluster.render.topology import HA
from pretix_cluster.secrets import SecretStore
from pretix_cluster.spec import ClusterSpec

IMAGE = Path(__file__).parents[2] / "src" / "pretix_cluster" / "images" / "pretix"
RECORDED = Path(__file__).parents[1] / "fixtures" / "pretix" / "proc-worker"
MAIN_PID, POOL = 7, (11, 12)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, IMAGE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load("healthcheck")


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    shutil.copytree(RECORDED, tmp_path / "proc")
    return tmp_path / "proc"


def _set_state(proc: Path, pid: int, state: str) -> None:
    stat = proc / str(pid) / "stat"
    text = stat.read_text()
    head, tail = text[: text.rindex(")") + 2], text[text.rindex(")") + 2 :]
    stat.write_text(head + state + tail[1:])


def test_the_recorded_worker_is_alive(proc):
    procs = healthcheck.processes(proc)
    assert {p.pid for p in procs if p.is_celery_worker} == {MAIN_PID, *POOL}
    assert healthcheck.worker_problem(procs) is None


def test_a_stopped_main_process_is_dead_even_with_its_pool(proc):
    _set_state(proc, MAIN_PID, "T")
    assert "state T" in healthcheck.worker_problem(healthcheck.processes(proc))


def test_a_main_process_without_a_live_pool_is_dead(proc):
    shutil.rmtree(proc / str(POOL[0]))
    _set_state(proc, POOL[1], "Z")
    assert "no live pool" in healthcheck.worker_problem(healthcheck.processes(proc))


def test_no_celery_at_all_is_dead(proc):
    shutil.rmtree(proc / str(MAIN_PID))
    for pid in POOL:
        shutil.rmtree(proc / str(pid))
    assert healthcheck.worker_problem(healthcheck.processes(proc)) == "no celery worker process"


def test_the_web_check_asks_the_liveness_path_the_stack_names(tmp_path):
    spec = ClusterSpec()
    files = HA.files(spec, SecretStore(tmp_path / "secrets").ensure_all())
    images = ImageSet({c: f"pretix-cluster/{c}:unit" for c in COMPONENTS})
    web = HA.stack(spec, images, files)["services"]["web"]
    assert web["environment"]["PRETIX_LIVE_PATH"] == LIVE_PATH
    assert web["healthcheck"]["test"][-1] == "web"
    assert "_site_host" not in dir(healthcheck)  # no Host header: Django is not asked
