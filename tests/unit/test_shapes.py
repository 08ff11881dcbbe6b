"""Load shapes: purchases/min targets turned into buyers over time, and their steady windows."""

from __future__ import annotations

import pytest

from pretix_cluster.loadtest.report import phase_figures
from pretix_cluster.loadtest.shapes import Plan, buyers_for, make_plan, pace_for


def test_buyers_follow_littles_law():
    assert buyers_for(60, 10) == 10  # one purchase per second, each slot one per 10 s
    assert buyers_for(61, 10) == 11  # rounded up, never fewer than the rate needs
    assert buyers_for(0.1, 10) == 1
    assert pace_for(4.0) == 6.0  # think time D/2 by default
    assert pace_for(4.0, 1.0) == 5.0


def test_steady_ramps_to_the_target_and_holds():
    plan = make_plan("steady", target_per_min=60, duration_s=100, pace_s=10, max_users=500)
    [phase] = plan.phases
    assert (phase.users, phase.rate_per_min, phase.ramp_s, phase.end_s) == (10, 60, 20, 100)
    assert plan.tick(0) == (10, 0.5)  # 10 buyers over a 20 s ramp
    assert plan.tick(99.9) == (10, 0.5)
    assert plan.tick(100) is None
    # 20 s ramp at half the rate, 80 s at the full rate
    assert plan.expected_purchases() == pytest.approx(60 / 2 * 20 / 60 + 60 * 80 / 60)


def test_phases_step_through_the_multipliers():
    plan = make_plan(
        "phases",
        target_per_min=60,
        duration_s=400,
        pace_s=10,
        max_users=500,
        multipliers=(0.5, 1, 2),
        weights=(1, 1, 1),
        ramp_s=10,
    )
    assert [p.name for p in plan.phases] == ["0.5x", "1x", "2x"]
    assert [p.users for p in plan.phases] == [5, 10, 20]
    assert [p.end_s for p in plan.phases] == [pytest.approx(133.33), 266.67, 400]
    assert plan.tick(10) == (5, 0.5)
    assert plan.tick(140) == (10, 0.5)  # 5 more buyers over the 10 s ramp
    assert plan.tick(300) == (20, 1.0)
    assert plan.phase_at(300).name == "2x"


def test_the_overload_phase_lasts_twice_as_long_by_default():
    plan = make_plan("phases", target_per_min=60, duration_s=300, pace_s=10, max_users=500)
    assert [p.name for p in plan.phases] == ["0.5x", "1x", "2x", "10x"]
    assert [p.end_s - p.start_s for p in plan.phases] == [60, 60, 60, 120]
    assert plan.phases[-1].end_s == 300


def test_peak_rushes_to_the_target_for_the_end_of_the_sale():
    plan = make_plan("peak", target_per_min=120, duration_s=200, pace_s=10, max_users=500)
    base, rush, peak = plan.phases
    assert (base.users, rush.users, peak.users) == (5, 20, 20)
    assert (base.end_s, rush.end_s, peak.end_s) == (80, 140, 200)
    assert rush.steady is False and rush.steady_window(10) is None
    assert peak.ramp_s == 0
    assert plan.tick(100) == (20, pytest.approx(15 / 60))  # the rush spreads 15 buyers over 60 s
    assert plan.tick(150) == (20, 1.0)  # no change and no ramp: the minimum rate


def test_max_users_caps_the_offered_rate():
    plan = make_plan("steady", target_per_min=600, duration_s=100, pace_s=10, max_users=40)
    [phase] = plan.phases
    assert phase.users == 40
    assert phase.capped is True
    assert phase.rate_per_min == 240  # 40 slots, one purchase per 10 s each
    assert plan.peak_users == 40


def test_pace_stretches_when_rounding_up_would_offer_too_much():
    plan = make_plan("steady", target_per_min=3, duration_s=100, pace_s=10, max_users=500)
    assert plan.phases[0].users == 1
    assert plan.pace_at(50) == 20  # one slot, 3 per minute wanted: one every 20 s


def test_a_plan_survives_its_json_round_trip():
    plan = make_plan("phases", target_per_min=30, duration_s=240, pace_s=7, max_users=50)
    assert Plan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ("square", {}),
        ("steady", {"target_per_min": 0}),
        ("steady", {"duration_s": -1}),
        ("steady", {"max_users": 0}),
    ],
)
def test_make_plan_refuses_nonsense(shape, kwargs):
    args = {"target_per_min": 60, "duration_s": 100, "pace_s": 10, "max_users": 5, **kwargs}
    with pytest.raises(ValueError):
        make_plan(shape, **args)


def _purchases(t_start: float, every_s: float, seconds: float, until_s: float) -> list[dict]:
    return [
        {"t0": t_start + t, "t1": t_start + t + seconds, "seconds": seconds, "outcome": "completed"}
        for t in range(0, int(until_s), int(every_s))
    ]


def test_a_phase_window_opens_one_purchase_time_after_its_ramp():

    plan = make_plan("steady", target_per_min=30, duration_s=200, pace_s=6, max_users=50)
    (phase,) = phase_figures(plan, _purchases(1000.0, 2, 30.0, 200), 1000.0)
    assert phase.settle_s == 30.0
    assert phase.window_s == (plan.phases[0].ramp_s + 30.0, 200.0)
    assert phase.steady


def test_a_phase_shorter_than_its_purchase_time_has_no_steady_window():

    plan = make_plan("steady", target_per_min=30, duration_s=120, pace_s=6, max_users=50)
    (phase,) = phase_figures(plan, _purchases(1000.0, 2, 60.0, 120), 1000.0)
    assert not phase.steady and not phase.within_budget
