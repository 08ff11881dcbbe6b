"""The soak: its seeded draw, its pool, its figures on recorded inputs, its report."""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import time
from pathlib import Path

import pytest

from pretix_cluster.chaos import report, scenarios, soak, soak_analysis
from pretix_cluster.chaos.analysis import Watch
from pretix_cluster.chaos.observe import Sample
from pretix_cluster.chaos.scenarios import Scenario, Target
from pretix_cluster.chaos.soak_analysis import EndStatus, InjectedFault
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.summary import Accounting

# --- the draw -------------------------------------------------------------------------------


def fake(number: int, name: str) -> Scenario:
    return Scenario(number, name, name, "service", lambda c: None, lambda c, t: None)


POOL = [fake(1, "a"), fake(2, "b"), fake(3, "c"), fake(4, "d")]
TARGETS = {"a": "etcd-1", "b": "etcd-1", "c": "web", "d": "worker"}


def target_of(scenario: Scenario) -> Target:
    node = TARGETS[scenario.name]
    return Target(node, node, "replica", None)


def draws(seed: int, count: int = 12) -> list[tuple[str, str, bool, float]]:
    draw = soak.Draw(seed, POOL, 30, 60)
    previous, seen = None, []
    for _ in range(count):
        scenario, target, repeated = draw.next(target_of, previous)
        previous = soak.target_key(target)
        seen.append((scenario.name, target.node, repeated, draw.interval()))
    return seen


def test_a_seed_draws_the_same_scenarios_and_intervals_again():
    assert draws(7) == draws(7)
    assert draws(7) != draws(8)


def test_every_scenario_of_the_pool_gets_drawn_and_intervals_stay_in_bounds():
    seen = draws(3, 40)
    assert {name for name, *_ in seen} == {"a", "b", "c", "d"}
    assert all(30 <= interval <= 60 for *_, interval in seen)


@pytest.mark.parametrize("seed", range(20))
def test_the_same_target_is_never_drawn_twice_in_a_row(seed):
    targets = [node for _, node, _, _ in draws(seed, 30)]
    assert all(a != b for a, b in itertools.pairwise(targets)), targets
    assert not any(repeated for _, _, repeated, _ in draws(seed, 30))


def test_a_pool_with_one_target_repeats_it_and_says_so():
    draw = soak.Draw(1, [POOL[0], POOL[1]], 30, 60)  # both take etcd-1
    _, target, repeated = draw.next(target_of, "etcd-1")
    assert target.node == "etcd-1" and repeated


def test_a_machine_target_is_the_machine():
    target = Target("pg-1", "pg-1", "machine of the primary", None, machine="lab-2")
    assert soak.target_key(target) == "lab-2"


def test_an_empty_pool_is_a_user_error():
    with pytest.raises(UserError):
        soak.Draw(1, [], 30, 60)


# --- the pool: a flag on each scenario ----------------------------------------------------


def names(pool: list[Scenario]) -> set[str]:
    return {s.name for s in pool}


def test_the_default_pool_is_every_drawable_scenario_of_this_machine():
    drawn = names(soak.pool((), on_lab=False))
    assert "docker-restart" not in drawn
    assert not drawn & {s.name for s in scenarios.SCENARIOS if s.machine}
    assert {"pg-primary-kill", "pg-primary-partition", "etcd-member-kill", "web-kill"} <= drawn


def test_on_a_lab_the_machine_scenarios_are_drawn_too():
    drawn = names(soak.pool((), on_lab=True))
    assert {"node-loss-primary", "node-partition"} <= drawn and "docker-restart" not in drawn


def test_a_scenario_added_to_the_catalogue_is_drawn_without_change(monkeypatch):
    added = fake(99, "a-new-fault")
    monkeypatch.setattr(soak, "SCENARIOS", (*scenarios.SCENARIOS, added))
    assert "a-new-fault" in names(soak.pool((), on_lab=False))
    monkeypatch.setattr(
        soak, "SCENARIOS", (*scenarios.SCENARIOS, dataclasses.replace(added, soak=False))
    )
    assert "a-new-fault" not in names(soak.pool((), on_lab=False))


def test_a_named_pool_by_number_or_name_without_repeats():
    assert [s.name for s in soak.pool(("8", "web-kill", "worker-kill"), False)] == [
        "worker-kill",
        "web-kill",
    ]


@pytest.mark.parametrize("named", [("docker-restart",), ("nope",), ("node-loss-primary",)])
def test_a_scenario_that_cannot_be_drawn_here_is_refused(named):
    with pytest.raises(UserError):
        soak.pool(named, on_lab=False)


@pytest.mark.parametrize(
    "change",
    [
        {"users": 0},
        {"interval_min": 5},
        {"interval_min": 61},
        {"minutes": 1},
        {"recover_timeout": 10},
    ],
)
def test_options_that_leave_no_room_are_refused(change):
    with pytest.raises(UserError):
        dataclasses.replace(soak.SoakOptions(minutes=5), **change).validate()
    soak.SoakOptions(minutes=5).validate()


# --- the figures ----------------------------------------------------------------------------

DESIRED = {"web": 2, "worker": 2}


def injected(number: int, at: float, service: str, **over) -> InjectedFault:
    fields = {
        "number": number,
        "scenario": 7 if service == "web" else 8,
        "name": f"{service}-kill",
        "title": f"{service} killed",
        "target": service,
        "role": "replica",
        "container": f"s_{service}.1.x",
        "machine": None,
        "fault": f"kill -9 s_{service}.1.x",
        "watch": Watch("service", service, service, DESIRED),
        "fault_at": at,
        "healthy_at": at + 20,
    }
    return InjectedFault(**(fields | over))


def sample(t: float, web: int = 2, worker: int = 2, health: int = 200) -> Sample:
    return Sample(t=t, tasks={"web": web, "worker": worker}, health=health)


def purchase(attempt: str, t1: float, outcome: str = "completed") -> dict:
    return {"attempt": attempt, "outcome": outcome, "t0": t1 - 2, "t1": t1, "steps": {}}


def accounting(**over) -> Accounting:
    acc = {
        "ok": True,
        "orders_in_db": 5,
        "completed_by_buyers": 4,
        "missing": [],
        "completed_but_not_live": [],
        "phantom_unacknowledged": [{"code": "P1", "attempt": "f2"}],
        "phantom_unknown": [],
        "duplicates": {"attempts_with_several_orders": {}, "codes_claimed_twice": []},
        "quota": {"size": 100, "sold_positions_in_orders": 5, "sold_per_availability": 5},
    }
    return Accounting.from_dict(acc | over)


# Two faults: a web kill at 1000 (web back at 1010), a worker kill at 1100 (back at 1106).
SAMPLES = [
    sample(995),
    sample(1002, web=1),
    sample(1010),
    sample(1020),
    sample(1101, worker=1),
    sample(1106),
    sample(1150),
]
RECORDS = [
    purchase("c1", 990),
    purchase("f1", 1003, "failed"),
    purchase("c2", 1012),
    purchase("c3", 1050),
    purchase("f2", 1102, "failed"),
    purchase("c4", 1108),
]
FAULTS = [injected(1, 1000, "web"), injected(2, 1100, "worker")]


HEALTHY = EndStatus(True)


def analyse(faults=FAULTS, acc=None, status=HEALTHY, error=None, samples=SAMPLES):
    return soak_analysis.analyse(
        {"seed": 1},
        faults,
        samples,
        RECORDS,
        acc or accounting(),
        status,
        load_started_at=980,
        end=1200,
        error=error,
    )


def test_each_fault_is_read_on_its_own_span():
    first, second = analyse().faults
    assert (first.detect_s, first.repair_s, first.rejoin_s) == (2, 10, 10)
    assert (second.detect_s, second.repair_s, second.rejoin_s) == (1, 6, 6)
    assert (first.started_s, second.started_s) == (20, 120)
    assert (first.window_s, second.window_s) == (22, 58)
    # the worker fault's failure and phantom are its own, not the web fault's
    assert (first.failed_purchases, second.failed_purchases) == (1, 1)
    assert (first.phantom, second.phantom) == (0, 1)
    assert first.healthy_s == 20 and first.recovered and second.recovered


def test_a_later_fault_is_not_taken_for_an_earlier_one():
    # The first web kill showed nothing; the second one's dip at 1101 is not its detection.
    faults = [injected(1, 1000, "web"), injected(2, 1100, "web")]
    samples = [sample(t) for t in (995, 1002, 1010, 1050)] + [sample(1101, web=1), sample(1106)]
    first, second = analyse(faults, samples=samples).faults
    assert first.no_visible_effect and first.detect_s is None and not first.recovered
    assert (second.detect_s, second.rejoin_s) == (1, 6) and second.recovered


def test_totals_and_a_passing_verdict():
    result = analyse()
    assert result.totals == soak_analysis.Totals(
        checked=True, completed=4, failed=2, phantom=1, orders_in_db=5
    )
    assert result.verdict.passed and result.verdict.reasons == ()


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"acc": accounting(missing=["L1"])}, "1 lost"),
        ({"acc": accounting(completed_but_not_live=["C1"])}, "1 confirmed but canceled/expired"),
        (
            {
                "acc": accounting(
                    quota={"size": 3, "sold_positions_in_orders": 5, "sold_per_availability": 5}
                )
            },
            "2 oversold",
        ),
        (
            {"acc": accounting(duplicates={"attempts_with_several_orders": {"a": ["X", "Y"]}})},
            "1 duplicated",
        ),
        ({"acc": accounting(completed_by_buyers=0)}, "no purchase completed"),
        ({"status": EndStatus(False, ("web: 1/2 tasks",))}, "status at the end: web: 1/2 tasks"),
        ({"faults": []}, "no fault was injected"),
        ({"error": "load test failed: boom"}, "load test failed: boom"),
        (
            {"faults": [injected(1, 1000, "web", healthy_at=None, error="not recovered")]},
            "fault 1 (web-kill): not recovered",
        ),
    ],
)
def test_each_failure_fails_the_soak_with_its_reason(over, reason):
    verdict = analyse(**over).verdict
    assert not verdict.passed and reason in verdict.reasons, verdict.reasons


def test_a_fault_without_a_healthy_status_did_not_recover():
    result = analyse([injected(1, 1000, "web", healthy_at=None), FAULTS[1]])
    assert not result.faults[0].recovered
    assert result.faults[0].reasons == ("status did not become healthy",)


def test_a_fault_nobody_saw_did_not_recover():
    calm = [sample(t) for t in (995, 1002, 1010)]
    (fault,) = analyse([FAULTS[0]], samples=calm).faults
    assert fault.no_visible_effect and not fault.recovered


def test_accounting_that_did_not_run_fails():
    unchecked = Accounting.from_dict({"ok": False, "problems": ["API unreachable"]})
    result = analyse(acc=unchecked)
    assert not result.totals.checked
    assert "accounting did not run: API unreachable" in result.verdict.reasons


def test_an_injected_fault_survives_its_json():
    assert InjectedFault.from_json(FAULTS[0].to_json()) == FAULTS[0]


# --- the report -----------------------------------------------------------------------------


def test_the_report_has_a_row_per_fault_the_totals_and_marks_failures():
    bad = injected(2, 1100, "worker", healthy_at=None, target="<worker>")
    html = report.render_soak_html(analyse([FAULTS[0], bad]))
    assert html.count("<tr") == 3  # the header and two faults
    assert 'class="fail"' in html and "&lt;worker&gt;" in html and "<worker>" not in html
    assert "status did not become healthy" in html and ">FAIL<" in html
    passing = report.render_soak_html(analyse())
    assert ">pass<" in passing and 'class="fail"' not in passing and "; seed: 1" in passing


# --- a real soak, recorded (stack s5soak, `chaos soak --minutes 5 --seed 11`) -----------------

RECORDED = Path(__file__).parents[1] / "fixtures" / "chaos" / "soak"


def recorded_json(name: str):
    path = RECORDED / name
    if path.suffix == ".gz":
        text = gzip.decompress(path.read_bytes()).decode()
        return (
            [json.loads(line) for line in text.splitlines()]
            if ".jsonl" in name
            else json.loads(text)
        )
    return json.loads(path.read_text())


def recorded_analysis() -> soak_analysis.SoakResult:
    run, figures = recorded_json("run.json"), recorded_json("soak.json")
    return soak_analysis.analyse(
        run["meta"],
        [InjectedFault.from_json(f) for f in recorded_json("faults.json")],
        [Sample.from_json(s) for s in recorded_json("samples.json.gz")],
        sorted(recorded_json("ledger.jsonl.gz"), key=lambda r: r["t0"]),
        Accounting.from_dict(recorded_json("accounting.json")),
        EndStatus(figures["status"]["healthy"], tuple(figures["status"]["problems"])),
        load_started_at=run["load_started_at"],
        end=run["end"],
    )


def test_the_recorded_soak_is_read_again_to_the_same_figures():
    again = json.loads(json.dumps(recorded_analysis().to_json()))
    assert again == recorded_json("soak.json")


def test_the_recorded_soak_shows_each_fault_noticed_repaired_and_back():
    result = recorded_analysis()
    assert [f.name for f in result.faults] == [
        "haproxy-kill",
        "redis-master-partition",
        "pg-primary-partition",
    ]
    haproxy, redis, pg = result.faults
    assert haproxy.first_signal == "swarm_task_down"
    assert pg.first_signal == "haproxy_marked_down" and pg.failed_purchases == 10
    # a partitioned node comes back after its heal, so later than the role is served again
    assert redis.rejoin_s > redis.repair_s and pg.rejoin_s > pg.repair_s
    assert all(f.recovered and f.healthy_s > f.detect_s for f in result.faults)
    assert result.totals.completed == 127 and result.totals.lost == 0
    assert result.verdict.passed


# --- the loop, with the cluster faked: a fault not recovered in time -------------------------


@dataclasses.dataclass
class FakeFault:
    needs_heal: bool = True
    injected: int = 0
    healed: int = 0

    def inject(self) -> None:
        self.injected += 1

    def heal(self) -> None:
        self.healed += 1

    def describe(self) -> str:
        return "freeze etcd-1"


class NeverHealthy:
    """A status watch that never sees a healthy cluster."""

    def __init__(self, cluster):
        self.not_before = self.healthy_at = None
        self.checks = [{"t": 0, "healthy": False, "problems": ["etcd-1: not answering"]}]

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Running:
    def is_alive(self) -> bool:
        return True


def fake_soak(monkeypatch, fault: FakeFault) -> soak.Soak:
    monkeypatch.setattr(soak, "HealthWatch", NeverHealthy)
    monkeypatch.setattr(soak, "desired_tasks", lambda cluster: {"etcd-1": 1})
    scenario = Scenario(
        15,
        "etcd-freeze",
        "etcd member frozen",
        "service",
        lambda c: Target("etcd-1", "etcd-1", "leader", None),
        lambda c, t: fault,
    )
    run = object.__new__(soak.Soak)
    run.cluster, run.say, run.injected, run.load = None, lambda m: None, [], Running()
    run.opts = soak.SoakOptions(minutes=5, recover_timeout=0.3, interval_min=10)
    run.draw = soak.Draw(1, [scenario], 10, 10)
    run.sampler = type("S", (), {"samples": [], "avoid": None})()
    return run


def test_a_fault_not_recovered_in_time_is_healed_recorded_and_ends_the_faults(monkeypatch):
    fault = FakeFault()
    run = fake_soak(monkeypatch, fault)
    error = run._faults(end=time.time() + 300)
    assert error == "fault 1 (etcd-freeze): not recovered within 0 s (etcd-1: not answering)"
    assert (fault.injected, fault.healed) == (1, 1)  # one fault only, and undone
    (record,) = run.injected
    assert record.error.startswith("not recovered") and record.healthy_at is None
    assert run.sampler.avoid is None
