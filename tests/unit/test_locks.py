"""The quota lock's hold times from pg_locks samples (bench/locks.py)."""

from __future__ import annotations

import pytest

from pretix_cluster.bench.locks import INTERVAL_S, LockHold, LockSample, spans

GAP = 3 * INTERVAL_S


def _run(
    pid: int, key: str, t0: float, n: int, granted: bool = True, exclusive: bool = True
) -> list[LockSample]:
    return [LockSample(t0 + i * INTERVAL_S, pid, key, granted, exclusive) for i in range(n)]


def test_a_lock_seen_in_consecutive_samples_is_one_hold():
    samples = _run(7, "0:1", 100.0, 10)  # 10 samples: 18 ms span + one interval
    assert spans(samples, True, GAP) == [pytest.approx(0.020)]


def test_a_gap_or_another_backend_starts_a_new_hold():
    samples = _run(7, "0:1", 100.0, 5) + _run(7, "0:1", 100.5, 5) + _run(8, "0:1", 100.2, 3)
    samples.sort(key=lambda s: (s.pid, s.key, s.t))
    assert spans(samples, True, GAP) == [
        pytest.approx(0.010),
        pytest.approx(0.010),
        pytest.approx(0.006),
    ]


def test_hold_figures_per_mode_and_the_ceiling_per_quota():
    # two cart adds (exclusive, 20 and 40 ms), two checkouts (shared, 10 ms each),
    # one cart add waiting 8 ms
    samples = _run(7, "0:2", 100.0, 10) + _run(8, "0:2", 101.0, 20)
    samples += _run(10, "0:2", 102.0, 5, exclusive=False) + _run(
        11, "0:2", 102.0, 5, exclusive=False
    )
    samples += _run(9, "0:2", 101.0, 4, granted=False)
    samples.sort(key=lambda s: (s.pid, s.key, s.t))
    hold = LockHold.from_samples("on", samples, GAP)
    assert (hold.exclusive_holds, hold.shared_holds, hold.waits) == (2, 2, 1)
    assert hold.exclusive_mean_ms == pytest.approx(30.0)  # (20 + 40) / 2
    assert hold.shared_mean_ms == pytest.approx(10.0)
    assert hold.wait_mean_ms == pytest.approx(8.0)
    assert hold.purchase_hold_ms == pytest.approx(40.0)
    assert hold.ceiling_per_min == pytest.approx(1500.0)  # 60 000 ms / (30 + 10) ms
    assert LockHold.from_samples("local", [], GAP).ceiling_per_min is None


def test_a_lock_that_changes_mode_is_two_holds():
    samples = _run(7, "0:2", 100.0, 5) + _run(7, "0:2", 100.0 + 5 * INTERVAL_S, 5, exclusive=False)
    hold = LockHold.from_samples("on", samples, GAP)
    assert (hold.exclusive_holds, hold.shared_holds) == (1, 1)


def test_psql_lines_parse():
    sample = LockSample.from_psql_line("1796544194.357047\t4242\t0:31337\tt\tf")
    assert sample == LockSample(1796544194.357047, 4242, "0:31337", True, False)
