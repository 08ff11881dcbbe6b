"""The bench's own path on the test cluster: pause it, measure the baseline, bring it back.

A short bench of the single-node baseline only (`--systems baseline`, profiled):
the cluster is paused (its nginx is a global service, which Swarm cannot
scale: the bench once failed right there), the baseline stack is deployed,
loaded and sampled with py-spy and pg_stat_statements, paused, purged, and the
cluster comes back healthy. No speed is asserted; the accounting must hold.
160 s of load: a cold baseline calibrates slowly (a long pace), and the profiled
2x phase (32 s) must still leave py-spy its 10 s after the ramp and one pace
(at 100 s, CI's first run skipped the profile: "phase 2x too short").
About 6 minutes.
"""

from __future__ import annotations

import json
import time

import pytest

from pretix_cluster import status
from tests.commandline import cli

pytestmark = pytest.mark.integration
RECOVERY_TIMEOUT_S = 180


def test_bench_measures_the_baseline_and_brings_the_cluster_back(cluster, spec_file, tmp_path):
    out = tmp_path / "bench"
    result = cli(
        "bench",
        "--systems", "baseline", "--scenarios", "shop", "--duration", "160s", "--target", "30",
        "--profile", "--purge-baseline", "--out", str(out), "--json",
        spec_file=spec_file,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    shop = json.loads(result.stdout)["runs"]["baseline"]["shop"]
    assert shop["accounting_ok"] is True and shop["completed"] > 0

    profile = shop["profile"]
    (web,) = profile["containers"]  # the baseline's one pretix container: gunicorn and celery
    assert web["samples"] > 0, profile["notes"]
    assert (out / "baseline-shop" / web["flamegraph"]).read_text().startswith("<?xml")
    views = dict(web["by_view"])
    assert any(v.startswith("presale/views/") for v in views), views
    assert any("pretixbase_" in st["query"] for st in profile["statements"]), profile["notes"]

    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while (problems := status.collect(cluster).problems) and time.monotonic() < deadline:
        time.sleep(2)
    assert not problems
