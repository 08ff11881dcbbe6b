"""The pure parts of `chaos`: windows from ledger records, timelines from samples, verdicts."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from pretix_cluster.chaos import analysis, faults, report, runner, scenarios
from pretix_cluster.chaos.analysis import Watch
from pretix_cluster.chaos.observe import Sample
from pretix_cluster.daemons import etcd
from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.summary import Accounting

FAULT = 1000.0


def record(t0: float, t1: float, outcome: str = "completed", **extra) -> dict:
    steps = extra.pop("steps", {"confirm": 0.5, "order_page": 0.2})
    return {"attempt": f"a{t0}", "outcome": outcome, "t0": t0, "t1": t1, "steps": steps, **extra}


# --- write window ----------------------------------------------------------------------


def test_window_runs_from_last_purchase_before_to_first_after():
    records = [
        record(980, 990),
        record(985, 997),  # the last one completed before the fault
        record(995, 1010, "failed", kind="server_error"),
        record(999, 1020, "failed", kind="timeout"),
        record(1005, 1031),  # the first one whose order was placed after the fault
        record(1010, 1040),
        record(1100, 1120, "interrupted", kind="interrupted"),  # the load's end, not a fault
    ]
    w = analysis.write_window(records, FAULT)
    assert w["last_ok_before_at"] == 997
    assert w["first_ok_after_at"] == 1031
    assert w["window_s"] == 34
    assert w["first_ok_after_s"] == 31
    assert w["failed_in_window"] == 2
    assert w["failed_after_fault"] == 2
    assert w["failed_kinds_after_fault"] == {"server_error": 1, "timeout": 1}
    assert (w["completed_before"], w["completed_after"]) == (2, 2)
    assert w["interrupted_at_end"] == 1


def test_an_order_page_loaded_after_the_fault_does_not_end_the_window():
    # Ordered before the fault (1000.1 - 0.5 = 999.6), its order page came after.
    records = [record(990, 1000.1, steps={"order_page": 0.5}), record(1001, 1012)]
    w = analysis.write_window(records, FAULT)
    assert w["last_ok_before_at"] is None  # it did not complete before the fault either
    assert w["first_ok_after_at"] == 1012


def test_calibration_purchases_are_not_load():
    records = [record(900, 905, phase="calibration"), record(1001, 1003)]
    w = analysis.write_window(records, FAULT)
    assert w["completed_before"] == 0
    assert w["window_s"] is None  # nothing before: no window to measure


def test_no_purchase_after_the_fault_leaves_the_window_open():
    records = [record(990, 995), record(996, 1100, "failed", kind="timeout")]
    w = analysis.write_window(records, FAULT)
    assert w["first_ok_after_at"] is None and w["window_s"] is None
    assert w["failed_in_window"] == 1


# --- timelines from samples -------------------------------------------------------------


def typed(samples: list[dict]) -> list[Sample]:
    """Samples written as JSON (the form of NN-name.samples.json), read back."""
    return [Sample.from_json(s) for s in samples]


def pg_sample(t: float, leader: str, old_state: str, up: str | None, old_role="replica") -> dict:
    members = [{"name": leader, "role": "leader", "state": "running"}]
    if old_state:
        members.append({"name": "pg-1", "role": old_role, "state": old_state})
    members.append({"name": "pg-3", "role": "sync_standby", "state": "streaming"})
    servers = {n: ("UP" if n == up else "DOWN") for n in ("pg-1", "pg-2", "pg-3")}
    return {
        "t": t,
        "haproxy": {"1": {"pg_primary": servers}, "2": {"pg_primary": servers}},
        "patroni": members,
        "tasks": {"pg-1": 1, "pg-2": 1, "pg-3": 1},
    }


def test_primary_failover_timeline():
    watch = Watch("pg_primary", "pg-1", "pg-1", {"pg-1": 1, "pg-2": 1, "pg-3": 1})
    before = pg_sample(999, "pg-1", "", "pg-1")
    before["patroni"][0]["name"] = "pg-1"
    down = pg_sample(1003, "pg-1", "", None)  # HAProxy noticed first
    down["patroni"][0]["name"] = "pg-1"
    down["tasks"]["pg-1"] = 0
    samples = [
        before,
        down,
        pg_sample(1012, "pg-2", "", "pg-2"),  # new leader, routed everywhere
        pg_sample(1030, "pg-2", "starting", "pg-2"),
        pg_sample(1041, "pg-2", "streaming", "pg-2"),  # back as a replica
    ]
    seen = analysis.timeline(typed(samples), watch, FAULT)
    assert seen.detect_s == 3
    assert seen.signals_s["haproxy_marked_down"] == 3
    assert seen.signals_s["swarm_task_down"] == 3
    assert seen.signals_s["patroni_leader_changed"] == 12
    assert seen.repair_s == 12
    assert seen.rejoin_s == 41
    assert seen.failover is True


def test_a_primary_restarted_before_its_key_expired_keeps_its_role():
    # Swarm restarted the killed leader within the TTL: no failover, same node back.
    watch = Watch("pg_primary", "pg-1", "pg-1", {"pg-1": 1})
    gone = pg_sample(1004, "pg-1", "", None)
    gone["patroni"] = [{"name": "pg-1", "role": "leader", "state": "stopped"}]
    back = pg_sample(1015, "pg-1", "", "pg-1")
    back["patroni"] = [{"name": "pg-1", "role": "leader", "state": "running"}]
    seen = analysis.timeline(typed([gone, back]), watch, FAULT)
    assert (seen.detect_s, seen.repair_s, seen.rejoin_s) == (4, 15, 15)
    assert seen.failover is False


def test_stale_views_right_after_the_kill_are_not_a_repair():
    # Swarm saw the task die first while HAProxy and Patroni still showed pg-1 serving.
    watch = Watch("pg_primary", "pg-1", "pg-1", {"pg-1": 1})
    stale = pg_sample(1000.4, "pg-1", "", "pg-1")
    stale["patroni"] = [{"name": "pg-1", "role": "leader", "state": "running"}]
    stale["tasks"]["pg-1"] = 0
    gone = pg_sample(1004, "pg-1", "", None)
    gone["patroni"] = [{"name": "pg-1", "role": "leader", "state": "stopped"}]
    back = pg_sample(1013, "pg-1", "", "pg-1")
    back["patroni"] = [{"name": "pg-1", "role": "leader", "state": "running"}]
    seen = analysis.timeline(typed([stale, gone, back]), watch, FAULT)
    assert seen.detect_s == 0.4
    assert (seen.repair_s, seen.rejoin_s) == (13, 13)


def test_repair_needs_every_haproxy_on_the_new_leader():
    watch = Watch("pg_primary", "pg-1", "pg-1", {"pg-1": 1})
    split = pg_sample(1005, "pg-2", "", "pg-2")
    split["haproxy"]["2"]["pg_primary"] = {"pg-1": "DOWN", "pg-2": "DOWN", "pg-3": "DOWN"}
    seen = analysis.timeline(typed([split, pg_sample(1008, "pg-2", "", "pg-2")]), watch, FAULT)
    assert seen.detect_s == 5
    assert seen.repair_s == 8


def redis_sample(t: float, master: str, flags: str, up: str, replicas: dict) -> dict:
    return {
        "t": t,
        "haproxy": {"1": {"redis": {n: ("UP" if n == up else "DOWN") for n in ("r1", "r2")}}},
        "sentinel": {"master": master, "flags": flags, "replicas": replicas},
        "tasks": {"r1": 1, "r2": 1},
    }


def test_redis_master_timeline_and_rejoin_as_replica():
    watch = Watch("redis_master", "r1", "r1", {"r1": 1, "r2": 1})
    ok = {"flags": "slave", "link": "ok"}
    samples = [
        redis_sample(1001, "r1", "master", "r1", {"r2": ok}),
        redis_sample(1006, "r1", "s_down,master", "r1", {"r2": ok}),  # sentinel noticed
        redis_sample(1009, "r2", "master", "r2", {"r1": {"flags": "s_down,slave", "link": "err"}}),
        redis_sample(1020, "r2", "master", "r2", {"r1": ok}),
    ]
    seen = analysis.timeline(typed(samples), watch, FAULT)
    assert seen.first_signal == "sentinel_down_flag"
    assert seen.detect_s == 6
    assert seen.repair_s == 9
    assert seen.rejoin_s == 20


def test_replaced_task_rejoins_when_every_service_runs_again():
    watch = Watch("service", "web", "web", {"web": 2, "nginx": 1})
    samples = [
        {"t": 1002, "tasks": {"web": 1, "nginx": 1}, "health": 200},
        {"t": 1025, "tasks": {"web": 2, "nginx": 1}, "health": 200},
    ]
    seen = analysis.timeline(typed(samples), watch, FAULT)
    assert (seen.detect_s, seen.repair_s, seen.rejoin_s) == (2, 25, 25)


def test_a_daemon_restart_counts_every_service():
    watch = Watch("daemon", "*", "dockerd", {"web": 2, "nginx": 1})
    samples = [
        {"t": 1001, "tasks": None, "health": None},  # Docker itself gone: no answer
        {"t": 1030, "tasks": {"web": 0, "nginx": 1}, "health": 200},
        {"t": 1060, "tasks": {"web": 2, "nginx": 1}, "health": 200},
    ]
    seen = analysis.timeline(typed(samples), watch, FAULT)
    assert seen.first_signal == "healthcheck_failed"
    assert seen.signals_s["swarm_task_down"] == 30
    assert seen.rejoin_s == 60


def test_samples_before_the_fault_and_missing_probes_are_ignored():
    watch = Watch("pg_primary", "pg-1", "pg-1", {"pg-1": 1})
    samples = [pg_sample(990, "pg-2", "", "pg-2"), {"t": 1001, "haproxy": None, "patroni": None}]
    seen = analysis.timeline(typed(samples), watch, FAULT)
    assert seen.detected_at is None and seen.repaired_at is None


def test_a_fault_nobody_saw_has_no_visible_effect_and_no_repair_time():
    # The bug this replaced: "repaired at 0.4 s" for a fault no sample ever showed.
    watch = Watch("service", "web", "web", {"web": 2})
    calm = [{"t": t, "tasks": {"web": 2}, "health": 200} for t in (1000.4, 1001.4, 1002.4)]
    seen = analysis.timeline(typed(calm), watch, FAULT)
    assert seen.no_visible_effect is True
    assert (seen.detected_at, seen.repaired_at, seen.rejoined_at) == (None, None, None)
    assert seen.repair_s is None and seen.rejoin_s is None


def test_a_fault_that_showed_is_not_without_effect():
    watch = Watch("service", "web", "web", {"web": 2})
    samples = [
        {"t": 1000.4, "tasks": {"web": 2}, "health": 200},  # stale: no repair from here
        {"t": 1001.4, "tasks": {"web": 1}, "health": 200},
        {"t": 1009.4, "tasks": {"web": 2}, "health": 200},
    ]
    seen = analysis.timeline(typed(samples), watch, FAULT)
    assert seen.no_visible_effect is False
    assert (seen.detect_s, seen.repair_s, seen.rejoin_s) == (1.4, 9.4, 9.4)


def test_recovery_needs_a_failure_first():
    ok = analysis.first_recovery(typed([{"t": 1001, "health": 200}]), lambda s: True, FAULT)
    assert ok == analysis.Recovery(None, None) and not ok.seen_failing
    samples = typed([{"t": 1001}, {"t": 1002}, {"t": 1005}])
    back = analysis.first_recovery(samples, lambda s: s.t >= 1005, FAULT)
    assert back == analysis.Recovery(1001, 1005) and back.seen_failing
    never = analysis.first_recovery(samples, lambda s: False, FAULT)
    assert never == analysis.Recovery(1001, None)


def test_a_sample_survives_its_json_unchanged():
    sample = redis_sample(1009, "r2", "master", "r2", {"r1": {"flags": "slave", "link": "ok"}})
    sample |= {
        "patroni": [{"name": "pg-1", "role": "leader", "state": "running"}],
        "health": 502,
        "took": 0.8,
    }
    back = Sample.from_json(sample).to_json()
    assert back["haproxy"] == sample["haproxy"]
    assert back["sentinel"] == sample["sentinel"]
    assert back["tasks"] == sample["tasks"] and back["health"] == 502 and back["took"] == 0.8
    assert back["patroni"][0] == {
        "name": "pg-1",
        "role": "leader",
        "state": "running",
        "lag": None,
        "timeline": None,
        "host": None,
    }
    assert Sample.from_json(back) == Sample.from_json(sample)


def test_reanalyse_reads_recorded_json_and_needs_the_stored_watch():
    watch = Watch("service", "web", "web", {"web": 2})
    recorded = [
        {"t": 1001.0, "tasks": {"web": 1}, "health": 200},
        {"t": 1008.0, "tasks": {"web": 2}, "health": 200},
    ]
    stored = dataclasses.asdict(watch)
    figures = passing_figures(fault_at=FAULT, watch=stored, target={"node": "web"})
    again = runner.reanalyse(dict(figures), recorded)
    assert (again["timeline"]["detect_s"], again["timeline"]["rejoin_s"]) == (1.0, 8.0)
    assert again["verdict"]["passed"] is True
    unwatched = {k: v for k, v in figures.items() if k != "watch"}
    assert runner.reanalyse(dict(unwatched), recorded) == unwatched  # left as it was


# --- predicates on a recorded sample of the real cluster ---------------------------------

FIXTURES = Path(__file__).parents[1] / "fixtures"
RECORDED = json.loads((FIXTURES / "chaos" / "sample.json").read_text())
DESIRED = {**dict.fromkeys(RECORDED["tasks"], 1), "web": 2, "worker": 2, "haproxy": 2}
WATCHES = {
    "pg_primary": Watch("pg_primary", "pg-3", "pg-3", DESIRED),  # the recorded leader
    "pg_replica": Watch("pg_replica", "pg-1", "pg-1", DESIRED),  # the recorded sync standby
    "redis_master": Watch("redis_master", "redis-1", "redis-1", DESIRED),
    "service": Watch("service", "web", "web", DESIRED),
}


def recorded(**change) -> Sample:
    return Sample.from_json(copy.deepcopy(RECORDED) | change)


@pytest.mark.parametrize("kind", list(WATCHES))
def test_the_recorded_healthy_sample_shows_no_fault_and_everything_in_place(kind):
    watch, sample = WATCHES[kind], recorded()
    assert sample.tasks == DESIRED and sample.health == 200
    fired = [name for name, p in analysis.signals(watch).items() if p(sample)]
    assert fired == []
    assert analysis.repaired(watch)(sample) and analysis.rejoined(watch)(sample)


def test_haproxy_marking_the_primary_down_is_a_signal():
    data = copy.deepcopy(RECORDED)
    data["haproxy"]["2"]["pg_primary"]["pg-3"] = "DOWN"
    sample, watch = Sample.from_json(data), WATCHES["pg_primary"]
    signals = analysis.signals(watch)
    assert signals["haproxy_marked_down"](sample)
    assert not signals["patroni_leader_changed"](sample)
    assert not analysis.repaired(watch)(sample)  # HAProxy 2 routes writes nowhere


def test_a_stopped_leader_is_gone_but_not_replaced():
    members = [
        m | {"state": "stopped"} if m["role"] == "leader" else m for m in RECORDED["patroni"]
    ]
    sample, watch = recorded(patroni=members), WATCHES["pg_primary"]
    signals = analysis.signals(watch)
    assert signals["patroni_member_gone"](sample) and not signals["patroni_leader_changed"](sample)
    assert not analysis.repaired(watch)(sample) and not analysis.rejoined(watch)(sample)


def test_a_new_leader_and_the_old_one_streaming_is_repaired_and_rejoined():
    roles = {"pg-3": ("replica", "streaming"), "pg-2": ("leader", "running")}
    members = [
        m | dict(zip(("role", "state"), roles.get(m["name"], (m["role"], m["state"])), strict=True))
        for m in RECORDED["patroni"]
    ]
    haproxy = {
        t: v | {"pg_primary": {"pg-1": "DOWN", "pg-2": "UP", "pg-3": "DOWN"}}
        for t, v in RECORDED["haproxy"].items()
    }
    sample, watch = recorded(patroni=members, haproxy=haproxy), WATCHES["pg_primary"]
    assert analysis.signals(watch)["patroni_leader_changed"](sample)
    assert analysis.repaired(watch)(sample) and analysis.rejoined(watch)(sample)


def test_a_replica_with_its_link_down_has_not_rejoined():
    sentinel = copy.deepcopy(RECORDED["sentinel"])
    sentinel["master"] = "redis-2"
    sentinel["replicas"] = {
        "redis-1": {"flags": "s_down,slave,disconnected", "link": "err"},
        "redis-3": {"flags": "slave", "link": "ok"},
    }
    sample, watch = recorded(sentinel=sentinel), WATCHES["redis_master"]
    assert analysis.signals(watch)["sentinel_new_master"](sample)
    assert not analysis.rejoined(watch)(sample)
    sentinel["replicas"]["redis-1"] = {"flags": "slave", "link": "ok"}
    assert analysis.rejoined(watch)(recorded(sentinel=sentinel))


def test_two_redis_masters_up_in_haproxy_is_not_a_repair():
    data = copy.deepcopy(RECORDED)
    data["haproxy"]["1"]["redis"]["redis-2"] = "UP"
    assert not analysis.repaired(WATCHES["redis_master"])(Sample.from_json(data))


def test_probes_that_did_not_answer_show_nothing_and_repair_nothing():
    silent = recorded(haproxy=None, patroni=None, sentinel=None, tasks=None, health=None)
    for kind, watch in WATCHES.items():
        fired = [name for name, p in analysis.signals(watch).items() if p(silent)]
        assert fired == (["healthcheck_failed"] if kind == "service" else []), kind
        assert not analysis.repaired(watch)(silent) and not analysis.rejoined(watch)(silent)


# --- integrity and verdict -------------------------------------------------------------


def accounting(**over) -> Accounting:
    """The accounting as the load test reads it from reconcile()'s dict."""
    acc = {
        "ok": True,
        "orders_in_db": 10,
        "completed_by_buyers": 9,
        "missing": [],
        "completed_but_not_live": [],
        "phantom_unacknowledged": [{"code": "X"}],
        "phantom_unknown": [],
        "duplicates": {"attempts_with_several_orders": {}, "codes_claimed_twice": []},
        "quota": {"size": 100, "sold_positions_in_orders": 10, "sold_per_availability": 10},
    }
    return Accounting.from_dict(acc | over)


def passing_figures(**over) -> dict:
    figures = {
        "integrity": analysis.integrity(accounting()),
        "window": {"first_ok_after_at": 1010.0},
        "timeline": {"detected_at": 1002.0, "rejoined_at": 1040.0},
        "healthy_at": 1050.0,
    }
    return figures | over


def test_a_phantom_order_is_counted_but_does_not_fail():
    figures = passing_figures()
    assert figures["integrity"]["phantom_unacknowledged"] == 1
    assert analysis.verdict(figures) == {"passed": True, "reasons": []}


@pytest.mark.parametrize(
    ("acc", "reason"),
    [
        (accounting(missing=["ABC12"]), "1 lost"),
        (
            accounting(
                quota={"size": 5, "sold_positions_in_orders": 7, "sold_per_availability": 6}
            ),
            "2 oversold",
        ),
        (
            accounting(
                duplicates={
                    "attempts_with_several_orders": {"a": ["X", "Y"]},
                    "codes_claimed_twice": [],
                }
            ),
            "1 duplicated",
        ),
    ],
)
def test_lost_oversold_or_duplicated_fails(acc, reason):
    result = analysis.verdict(passing_figures(integrity=analysis.integrity(acc)))
    assert not result["passed"] and result["reasons"] == [reason]


def test_no_recovery_fails_with_each_reason():
    figures = passing_figures(
        window={"first_ok_after_at": None}, timeline={"detected_at": 1.0}, healthy_at=None
    )
    reasons = analysis.verdict(figures)["reasons"]
    assert reasons == [
        "no purchase completed after the fault",
        "the failed node did not rejoin",
        "status did not become healthy",
    ]


def test_no_visible_effect_fails_with_that_reason_alone():
    figures = passing_figures(
        timeline={"detected_at": None, "rejoined_at": None, "no_visible_effect": True}
    )
    assert analysis.verdict(figures)["reasons"] == [analysis.NO_VISIBLE_EFFECT]


def test_a_node_never_seen_out_of_place_needs_no_rejoin():
    seen = {"detected_at": 1002.0, "rejoined_at": None, "rejoin_seen_failing": False}
    assert analysis.verdict(passing_figures(timeline=seen))["passed"] is True
    seen["rejoin_seen_failing"] = True
    assert analysis.verdict(passing_figures(timeline=seen))["reasons"] == [
        "the failed node did not rejoin"
    ]


def test_missing_accounting_fails():
    integ = analysis.integrity(
        Accounting.from_dict({"ok": False, "problems": ["accounting failed: 502"]})
    )
    result = analysis.verdict(passing_figures(integrity=integ))
    assert result["reasons"] == ["accounting did not run: accounting failed: 502"]


# --- scenarios, targets, faults, report ---------------------------------------------------


def test_select_by_number_name_or_all():
    assert [s.number for s in scenarios.select(["1", "redis-master-kill", "7"])] == [1, 4, 7]
    on_one_machine = [*range(1, 12), *range(15, 19)]
    assert [s.number for s in scenarios.select(["all"])] == on_one_machine
    on_lab = [*range(1, 11), *range(12, 19)]
    assert [s.number for s in scenarios.select(["all"], on_lab=True)] == on_lab
    with pytest.raises(UserError, match="needs a lab"):
        scenarios.select(["node-loss-primary"])
    with pytest.raises(UserError, match="not a lab"):
        scenarios.select(["11"], on_lab=True)
    with pytest.raises(UserError):
        scenarios.select(["19"])
    with pytest.raises(UserError):
        scenarios.select([])


def test_scenario_numbers_and_names_are_unique():
    assert [s.number for s in scenarios.SCENARIOS] == list(range(1, 19))
    assert len({s.name for s in scenarios.SCENARIOS}) == 18


def test_etcd_leader_from_endpoint_status():
    status = [
        {"Endpoint": "http://etcd-3:2379", "Status": {"header": {"member_id": 3}, "leader": 2}},
        {"Endpoint": "http://etcd-2:2379", "Status": {"header": {"member_id": 2}, "leader": 2}},
    ]
    statuses = [etcd.EndpointStatus.from_json(e) for e in status]
    assert etcd.leader_of(statuses, ["etcd-1", "etcd-2", "etcd-3"]) == "etcd-2"
    assert etcd.leader_of(statuses[:1], ["etcd-1", "etcd-2", "etcd-3"]) is None


def test_find_dockerd_reads_proc(tmp_path):
    for pid, argv in (("12", b"sleep\x0010\x00"), ("34", b"/usr/bin/dockerd\x00--debug\x00")):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(argv)
    (tmp_path / "self").mkdir()
    daemon = faults.find_dockerd(tmp_path)
    assert daemon == faults.DaemonProcess(34, ["/usr/bin/dockerd", "--debug"])
    assert faults.find_dockerd(tmp_path / "12") is None


def test_html_report_has_a_row_per_scenario_and_marks_failures():
    ok = passing_figures(scenario=1, name="pg-primary-kill", title="PostgreSQL primary killed")
    ok["verdict"] = analysis.verdict(ok)
    bad = passing_figures(scenario=4, name="redis-master-kill", title="Redis <master> killed")
    bad["integrity"] = analysis.integrity(accounting(missing=["Q"]))
    bad["verdict"] = analysis.verdict(bad)
    html = report.render_html([ok, bad], {"stack": "t"})
    assert html.count("<tr") == 3
    assert "Redis &lt;master&gt; killed" in html
    assert '<tr class="fail">' in html and "1 lost" in html
    assert "http" not in html.replace("http-", "")  # no external assets


def test_the_report_says_what_sold_during_the_fault_and_which_tasks_were_replaced():
    figures = passing_figures(scenario=18, name="pg-outage", title="outage")
    figures |= {"completed_while_faulted": 7, "tasks_replaced": {"web": 0, "worker": 1}}
    html = report.render_html([figures], {"stack": "t"})
    assert "purchases completed while the fault lasted: 7" in html
    assert "tasks Swarm replaced during the fault: web 0, worker 1" in html


def test_rewind_lines_are_picked_from_patroni_log():
    log = "INFO: no action\nINFO: running pg_rewind from pg-2\nINFO: pg_rewind done\n"
    assert runner.rewind_lines(log) == ["INFO: running pg_rewind from pg-2", "INFO: pg_rewind done"]


def test_fault_at_must_leave_time_to_recover():
    runner.ChaosOptions(duration=120, fault_at=35).validate()
    with pytest.raises(UserError):
        runner.ChaosOptions(duration=60, fault_at=40).validate()


def test_a_partition_drops_everything_but_loopback_and_heals_the_same_rules():
    from pretix_cluster.chaos.faults import partition_rules

    cut, heal = partition_rules("-I"), partition_rules("-D")
    assert [c[3] for c in cut] == ["INPUT", "OUTPUT"]
    assert all(c[-2:] == ["-j", "DROP"] and "lo" in c and "!" in c for c in cut)
    assert [[a for a in c if a not in ("-I", "1")] for c in cut] == [
        [a for a in c if a != "-D"] for c in heal
    ]


def test_tasks_back_times_each_service_that_lost_tasks():
    watch = analysis.Watch("pg_primary", "pg-1", "pg-1", {"pg-1": 1, "web": 2, "worker": 2})
    t0 = 1000.0
    samples = [
        Sample(t0 - 1, tasks={"pg-1": 1, "web": 2, "worker": 2}),
        Sample(t0 + 1, tasks={"pg-1": 0, "web": 1, "worker": 2}),
        Sample(t0 + 2, tasks=None),  # the probe did not answer: no evidence
        Sample(t0 + 9, tasks={"pg-1": 0, "web": 2, "worker": 2}),
        Sample(t0 + 30, tasks={"pg-1": 1, "web": 2, "worker": 2}),
    ]
    assert analysis.tasks_back(samples, watch, t0) == {"pg-1": 30.0, "web": 9.0}
    # never back: not listed
    assert analysis.tasks_back(samples[:4], watch, t0) == {"web": 9.0}


# --- several members at once: etcd's quorum, every PostgreSQL node ------------------------


def etcd_sample(t: float, healthy: int, health: int = 200, members: int = 3) -> dict:
    etcd = [
        {"endpoint": f"http://etcd-{i}:2379", "healthy": i <= healthy}
        for i in range(1, members + 1)
    ]
    return {"t": t, "etcd": etcd, "health": health, "tasks": {"etcd-1": 1}}


QUORUM = Watch("etcd_quorum", "etcd", "etcd-1+etcd-2", {"etcd-1": 1}, ("etcd-1", "etcd-2"))


def test_etcd_quorum_loss_is_seen_in_member_health_and_repaired_when_all_are_back():
    samples = [
        etcd_sample(999, 3),
        etcd_sample(1003, 0),  # the member that answers sees no quorum: nobody healthy
        etcd_sample(1030, 1),
        etcd_sample(1061, 3),
    ]
    seen = analysis.timeline(typed(samples), QUORUM, FAULT)
    assert seen.first_signal == "etcd_member_unhealthy"
    assert (seen.detect_s, seen.repair_s, seen.rejoin_s) == (3, 61, 61)


def test_etcd_answering_nothing_is_no_sign_and_no_repair():
    (silent,) = typed([etcd_sample(1003, 0) | {"etcd": None}])
    assert not any(p(silent) for p in analysis.signals(QUORUM).values())
    assert not analysis.repaired(QUORUM)(silent) and not analysis.rejoined(QUORUM)(silent)


def test_a_sample_keeps_etcd_health_through_json():
    sample = Sample.from_json(etcd_sample(5, 2))
    assert [m.healthy for m in sample.etcd] == [True, True, False]
    assert Sample.from_json(sample.to_json()) == sample


def outage_sample(t: float, up: str | None, states: dict[str, str], health: int) -> dict:
    servers = {n: ("UP" if n == up else "DOWN") for n in states}
    members = [
        {"name": n, "role": "leader" if n == up else "replica", "state": state}
        for n, state in states.items()
    ]
    return {
        "t": t,
        "haproxy": {"1": {"pg_primary": servers}},
        "patroni": members,
        "health": health,
        "tasks": dict.fromkeys(states, 1),
    }


OUTAGE = Watch("pg_outage", "postgres", "pg-1+pg-2", {"pg-1": 1, "pg-2": 1}, ("pg-1", "pg-2"))


def test_a_database_outage_is_detected_repaired_by_a_leader_and_rejoined_by_all():
    samples = [
        outage_sample(1004, None, {"pg-1": "running", "pg-2": "running"}, 503),
        outage_sample(1095, "pg-1", {"pg-1": "running", "pg-2": "starting"}, 200),
        outage_sample(1110, "pg-1", {"pg-1": "running", "pg-2": "streaming"}, 200),
    ]
    seen = analysis.timeline(typed(samples), OUTAGE, FAULT)
    assert seen.signals_s == {
        "swarm_task_down": None,
        "haproxy_marked_down": 4,
        "healthcheck_failed": 4,
    }
    assert (seen.repair_s, seen.rejoin_s) == (95, 110)
    (silent,) = typed([outage_sample(1004, None, {"pg-1": "running"}, 200) | {"haproxy": None}])
    assert not analysis.no_primary_routed(silent)


def test_purchases_count_as_sold_during_the_fault_only_between_injection_and_heal():
    records = [
        record(990, 999),  # before
        record(1001, 1010),  # during
        record(1001, 1010, outcome="failed"),
        record(1050, 1060.1),  # confirmed at 1059.9, before the heal at 1060
        record(1050, 1061),  # confirmed at 1060.8, after the heal
        record(1, 1020) | {"phase": "calibration"},
    ]
    assert analysis.completed_while_faulted(records, FAULT, 1060.0) == 2
    assert analysis.completed_while_faulted(records, FAULT, None) == 3


def test_tasks_replaced_counts_ids_that_no_longer_run():
    before = {"web": {"a", "b"}, "worker": {"c"}}
    after = {"web": {"a", "x"}, "worker": {"c"}, "pg-1": {"p"}}
    assert analysis.tasks_replaced(before, after) == {"web": 1, "worker": 0}


def test_a_scenario_that_keeps_selling_fails_without_sales_during_the_fault():
    figures = passing_figures(keeps_selling=True, completed_while_faulted=0)
    assert analysis.verdict(figures)["reasons"] == ["no purchase completed while the fault lasted"]
    assert analysis.verdict(passing_figures(keeps_selling=True, completed_while_faulted=4))[
        "passed"
    ]


def test_a_replaced_application_task_fails_an_outage_that_must_keep_them():
    figures = passing_figures(keeps_tasks=["web", "worker"], tasks_replaced={"web": 2, "pg-1": 1})
    assert analysis.verdict(figures)["reasons"] == ["Swarm replaced 2 web task(s) during the fault"]


class FakeContainer:
    """Docker's pause/unpause as the engine answers them: refused while busy, then done."""

    def __init__(self, refusals: int = 0):
        self.name, self.status, self.refusals, self.calls = "pg-1.1.x", "running", refusals, []

    def _refuse(self):
        if self.refusals:
            self.refusals -= 1
            raise faults.docker.errors.APIError("container is busy")

    def pause(self):
        self.calls.append("pause")
        self._refuse()
        self.status = "paused"

    def unpause(self):
        self.calls.append("unpause")
        self._refuse()
        self.status = "running"

    def reload(self):
        pass


def test_freeze_pauses_retries_a_refusal_and_heals_once(monkeypatch):
    monkeypatch.setattr(faults, "FREEZE_RETRY_S", 0)
    container = FakeContainer(refusals=1)
    fault = faults.Freeze(container)
    fault.inject()
    assert container.status == "paused"
    fault.heal()
    fault.heal()  # idempotent
    assert container.status == "running"
    assert container.calls == ["pause", "pause", "unpause"]


def test_all_of_heals_every_part_even_when_one_heal_fails(monkeypatch):
    monkeypatch.setattr(faults, "FREEZE_RETRY_S", 0)
    first, second = FakeContainer(), FakeContainer()
    fault = faults.AllOf([faults.Freeze(first), faults.Freeze(second)], "freeze")
    fault.inject()
    first.refusals = faults.FREEZE_ATTEMPTS  # the engine keeps refusing to thaw it
    with pytest.raises(faults.docker.errors.APIError):
        fault.heal()
    assert (first.status, second.status) == ("paused", "running")


def test_all_of_undoes_what_it_did_when_a_later_part_fails(monkeypatch):
    monkeypatch.setattr(faults, "FREEZE_RETRY_S", 0)
    first, second = FakeContainer(), FakeContainer(refusals=faults.FREEZE_ATTEMPTS)
    fault = faults.AllOf([faults.Freeze(first), faults.Freeze(second)], "freeze")
    with pytest.raises(faults.docker.errors.APIError):
        fault.inject()
    assert first.status == "running"
