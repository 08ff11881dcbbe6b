"""The core sweep's model, its verdict and the cgroup limit it sets and restores."""

from __future__ import annotations

import pytest

from pretix_cluster.bench import report, sweep
from pretix_cluster.bench.sweep import Model, Point
from pretix_cluster.errors import UserError


def test_the_model_subtracts_idle_work_and_caps_at_what_the_stack_could_use():
    model = Model(cpu_s_per_purchase=1.0, idle_cores=0.2, available_cores=1.8)
    assert model.predict(1.0) == pytest.approx(48.0)  # 60 * (1.0 - 0.2) / 1.0
    assert model.predict(2.0) == pytest.approx(96.0)  # capped at 1.8 available
    assert model.predict(0.1) == 0.0


def test_a_point_reports_its_error_against_the_prediction():
    assert Point(1.0, 50.0, 45.0, "2x", 3.0, "x").error == pytest.approx(-0.1)
    assert Point(1.0, None, 45.0, "2x", 3.0, "x").error is None


def test_linearity_compares_throughput_per_core():
    points = [Point(0.5, None, 20.0, "1x", 1, "a"), Point(2.0, None, 100.0, "2x", 1, "b")]
    assert sweep._linearity(points) == pytest.approx(0.8)  # 40/core at 0.5 vs 50/core at 2


def test_core_counts_are_checked():
    assert sweep.parse_cores("0.5, 1,2") == [0.5, 1.0, 2.0]
    for bad in ("", "x", "0", "99"):
        with pytest.raises(UserError):
            sweep.parse_cores(bad)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_limit_is_written_and_restored_even_after_a_failure(tmp_path, monkeypatch, version):
    path = tmp_path / "limit"
    path.write_text("-1" if version == "v1" else "max 100000")
    other = tmp_path / "absent"
    monkeypatch.setattr(sweep, "_V1", path if version == "v1" else other)
    monkeypatch.setattr(sweep, "_V2", path if version == "v2" else other)
    with pytest.raises(RuntimeError), sweep.limited(1.5):
        assert path.read_text() == ("150000" if version == "v1" else "150000 100000")
        raise RuntimeError("a failed run")
    assert path.read_text() == ("-1" if version == "v1" else "max 100000")


def test_the_report_leads_with_the_models_verdict_and_draws_it():
    sw = {
        "model": {"cpu_s_per_purchase": 1.0, "idle_cores": 0.2, "available_cores": 1.8},
        "points": [
            Point(1.0, 48.0, 45.0, "2x", 3.0, "a").to_dict(),
            Point(2.0, 96.0, 96.0, "2x", 3.0, "b").to_dict(),
        ],
        "within": 0.2,
        "holds": True,
        "linearity": 0.94,
    }
    doc = {
        "host_cores": 2,
        "target_per_min": 60,
        "duration_s": 300,
        "isolated": True,
        "cluster_shape": {},
        "baseline_shape": {},
        "runs": {},
        "comparison": {},
        "saturation": None,
        "capacity": None,
        "sweep": sw,
        "lock_hold": [
            {
                "mode": "on",
                "exclusive_holds": 90,
                "exclusive_mean_ms": 30.0,
                "exclusive_p95_ms": 80.0,
                "shared_holds": 85,
                "shared_mean_ms": 10.0,
                "shared_p95_ms": 20.0,
                "waits": 3,
                "wait_mean_ms": 10.0,
                "sample_interval_ms": 2.0,
                "purchase_hold_ms": 40.0,
                "ceiling_per_min": 1500.0,
            }
        ],
    }
    md = report.markdown(doc)
    assert "Capacity model (60 x (cores - 0.2 idle) / 1 CPU-s per purchase): within 20%" in md
    assert "One quota admits at least 1500 purchases/min (its lock held 40.0 ms" in md
    assert "above the customer's" in md
    assert "| on | 90 | 30.0 | 80.0 | 85 | 10.0 | 20.0 | 3 | 10.0 | 1500 |" in md
    assert "| 1 | 48.0 | 45.0 (2x) | -6% | 3.0 |" in md
    assert "purchases/min by cores" in report.html(doc)
