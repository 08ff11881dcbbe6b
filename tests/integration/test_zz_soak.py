"""A short soak: one steady load, robust faults drawn one after another, then the accounting.

Runs after the chaos scenarios (file name), against the session's test cluster,
through the real command line: four minutes of load, a fault from a pool of
kills that one machine's cluster heals quickly (a worker, a web replica, an
etcd member, an HAProxy replica), each healed and `status` healthy before the
next. Strict: nothing lost, oversold or duplicated, every fault recovered,
`status` healthy at the end. The seed is fixed, so the draw is the same on
every run; times are reported, not asserted.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from pretix_cluster.cluster import Cluster

from .conftest import cli

pytestmark = pytest.mark.integration

POOL = "worker-kill,web-kill,etcd-member-kill,haproxy-kill"
ARGS = ("--minutes", "4", "--seed", "5", "--users", "4", "--scenarios", POOL)


@pytest.fixture(scope="module")
def soak(cluster: Cluster, spec_file: Path, tmp_path_factory) -> tuple[dict, object]:
    out = tmp_path_factory.mktemp("soak")
    result = cli(
        "chaos", "soak", *ARGS, "--out", str(out), spec_file=spec_file, check=False, timeout=900
    )
    print(result.stdout[-4000:], result.stderr[-4000:])
    path = out / "soak.json"
    assert path.exists(), result.stderr[-3000:]
    return json.loads(path.read_text()), result


def test_faults_were_drawn_from_the_pool_and_each_recovered(soak):
    figures, run = soak
    faults = figures["faults"]
    assert len(faults) >= 2, run.stderr[-3000:]
    assert {f["name"] for f in faults} <= set(POOL.split(","))
    for fault in faults:
        assert fault["recovered"], fault["reasons"]
        assert fault["detect_s"] is not None and fault["healthy_s"] is not None, fault
        print(
            f"fault {fault['number']} {fault['name']} on {fault['target']}: detect "
            f"{fault['detect_s']} s, repaired {fault['repair_s']} s, healthy {fault['healthy_s']} s"
        )
    targets = [f["target"] for f in faults]
    assert all(a != b for a, b in itertools.pairwise(targets)), targets


def test_nothing_lost_oversold_or_duplicated(soak):
    totals = soak[0]["totals"]
    assert totals["checked"], totals["problems"]
    assert (totals["lost"], totals["not_live"], totals["oversold"], totals["duplicated"]) == (
        0,
        0,
        0,
        0,
    ), totals
    assert totals["completed"] > 0


def test_the_soak_passed_and_the_cluster_is_healthy(soak, spec_file):
    figures, run = soak
    assert figures["status"]["healthy"], figures["status"]["problems"]
    assert figures["verdict"]["passed"], figures["verdict"]["reasons"]
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"seed {ARGS[3]}" in run.stderr
    assert (Path(figures["meta"]["load_report"])).exists()
    assert cli("status", spec_file=spec_file, check=False).returncode == 0
