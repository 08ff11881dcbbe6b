"""The typed load-test summary and the three HTML reports, from one recorded-shape run."""

from __future__ import annotations

import dataclasses
import json

import pytest
from markupsafe import escape

from pretix_cluster.bench import analysis as bench_analysis
from pretix_cluster.bench import report as bench_report
from pretix_cluster.chaos import analysis as chaos_analysis
from pretix_cluster.chaos import report as chaos_report
from pretix_cluster.loadtest import cli as loadtest_cli
from pretix_cluster.loadtest import report
from pretix_cluster.loadtest.accounting import reconcile
from pretix_cluster.loadtest.summary import Accounting, LoadSummary
from pretix_cluster.reports import svgplot
from pretix_cluster.spec import ClusterSpec
from tests.unit import report_inputs as run

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="module")
def records():
    return run.ledger()


@pytest.fixture(scope="module")
def summary(records) -> LoadSummary:
    return _summary(records)


@pytest.fixture(scope="module")
def held_records():
    return run.ledger_with_waiting_room()


@pytest.fixture(scope="module")
def held(held_records) -> LoadSummary:
    """The run behind a waiting room that held the 10x phase's buyers."""
    return _summary(held_records)


def _summary(records) -> LoadSummary:
    return report.build_summary(
        meta=run.meta(),
        plan=run.plan(),
        ledger=records,
        t_start=run.T_START,
        t_end=run.T_START + run.DURATION,
        accounting=run.accounting(records),
        cpu=run.cpu(),
        locust_stats=run.locust_stats(),
    )


def _load_html(summary, records) -> str:
    return report.render_html(
        summary,
        summary.plan,
        report.load_records(records),
        run.T_START,
        run.T_START + run.DURATION,
        run.history(),
        run.cluster_samples(),
        run.generator_samples(),
    )


# --- the typed summary -------------------------------------------------------------------


def test_summary_counts_purchases_from_the_ledger(summary):
    pur = summary.purchases
    # 77 load attempts + 1 cut short; calibration is not load
    assert (pur.attempted, pur.completed, pur.failed, pur.interrupted) == (78, 71, 6, 1)
    assert pur.rejected_sold_out == 3 and pur.errors_by_kind == {"sold_out": 3, "timeout": 3}
    assert pur.failure_rate_excluding_sold_out == pytest.approx(3 / 77, abs=1e-4)
    assert summary.retries.total == sum(1 for i in range(1, 78) if i % 4 == 0)


def test_sustained_is_the_best_steady_phase_within_the_failure_budget(summary):
    phases = {p.phase: p for p in summary.throughput.phases}
    # failures start after 120 s: 0.5x and 1x held, 2x and 10x did not
    assert phases["0.5x"].within_budget and phases["1x"].within_budget
    assert not phases["2x"].within_budget and phases["2x"].failure_rate > 0.01
    sustained = summary.throughput.sustained
    assert sustained is not None
    assert sustained.phase in ("0.5x", "1x")
    assert sustained.completed_per_min == max(
        phases["0.5x"].completed_per_min, phases["1x"].completed_per_min
    )


def test_cpu_per_purchase_keeps_the_generator_apart(summary):
    cpu = summary.cpu
    assert cpu.cluster_cpu_s == 215.0 and cpu.busiest_component == "web"
    assert list(cpu.cluster_by_component) == ["web", "worker", "pg", "redis"]
    assert cpu.cluster_cpu_s_per_purchase == round(215.0 / 71, 4)
    assert cpu.generator_cpu_s_per_purchase == round(30.0 / 71, 4)
    # web idled at 0.05 cores for 240 s: 12 CPU-s of its 120 are not the purchases'
    web = cpu.cluster_by_component["web"]
    assert web.cpu_s_per_purchase_net_of_idle == round((120.0 - 12.0) / 71, 4)
    assert cpu.host_other_cpu_s == 300.0 - 215.0 - 30.0 - 2.0


def test_summary_json_round_trips(summary):
    data = json.loads(json.dumps(summary.to_dict()))
    assert LoadSummary.from_dict(data) == summary
    # the shape old summary.json files have: readable by key, as before
    assert data["throughput"]["sustained"]["completed_per_min"] > 0
    assert data["cpu"]["cluster_by_component"]["web"]["cpu_s"] == 120.0
    assert data["plan"]["model"].startswith("buyers = ")
    assert data["accounting"]["phantom_unacknowledged"][0]["code"] == "PHANT"


def test_without_a_waiting_room_the_summary_and_report_show_none(summary, records):
    assert summary.queue is None and summary.to_dict()["queue"] is None
    assert all(p.waited == 0 and p.queue_s is None for p in summary.throughput.phases)
    html = _load_html(summary, records)
    assert "Waiting room" not in html and "waited" not in html and "admitted" not in html


def test_the_waiting_rooms_wait_is_counted_apart_from_the_purchase(held, held_records, summary):
    q = held.queue
    assert q is not None
    waited = [r for r in held_records if r.get("queue_holds")]
    assert q.buyers_waited == len(waited) == 18  # the 10x phase's attempts, failed ones too
    assert (q.holds, q.longest_line) == (4 * 18, 14)
    assert (q.wait_s.p50, q.wait_s.max) == (9.0, 10.0)
    # the admitted buyers bought as fast as without the waiting room: the wait is not in it
    assert q.admitted_purchase_s == held.latency_s.purchase == summary.latency_s.purchase
    done = [r for r in waited if r["outcome"] == "completed"]
    assert q.in_system_s.max == max(r["seconds"] + r["queue_s"] for r in done)
    phases = {p.phase: p for p in held.throughput.phases}
    assert [p.waited for p in phases.values()] == [0, 0, 0, phases["10x"].waited]
    assert phases["10x"].waited > 0 and phases["10x"].queue_s.max == 10.0
    assert phases["10x"].purchase_s.p95 < 3.0  # the admitted buyers': 1 to 2.6 s


def test_the_steady_window_opens_after_the_wait_and_the_purchase(held):
    # a buyer of the ramp completes after waiting 8-10 s and buying 1-2.6 s: the window
    # opens one such time in the system after the ramp, not one purchase time
    tenx = next(p for p in held.throughput.phases if p.phase == "10x")
    assert tenx.settle_s is not None and tenx.settle_s > 10.0
    assert tenx.window_s[0] == pytest.approx(180.0 + 12.0 + tenx.settle_s)


def test_summary_json_round_trips_the_waiting_room(held):
    data = json.loads(json.dumps(held.to_dict()))
    assert LoadSummary.from_dict(data) == held
    assert data["queue"]["wait_s"]["p95"] == held.queue.wait_s.p95
    assert data["throughput"]["phases"][-1]["queue_s"]["max"] == 10.0


def test_accounting_reads_reconciles_dict_and_writes_it_back(records):
    raw = run.accounting(records)
    acc = Accounting.from_dict(raw)
    assert acc.ok and acc.checked and acc.quota is not None
    assert [p.code for p in acc.phantom_unacknowledged] == ["PHANT"]
    assert acc.quota.sold == 72 and acc.quota.oversold_by == 0
    assert json.loads(json.dumps(acc.to_dict())) == json.loads(json.dumps(raw))


def test_an_oversold_quota_and_a_lost_order_read_as_such(records):
    orders = run.orders(records)[1:]  # the first completed purchase's order is gone
    raw = reconcile(
        orders,
        {"paid_orders": 70, "pending_orders": 1, "total_size": 50},
        run_id=run.RUN_ID,
        event=run.RUN_ID,
        item_id=1,
        quota_size=50,
        ledger=records,
    )
    acc = Accounting.from_dict(raw)
    assert not acc.ok
    assert acc.missing == ("C0001",)
    assert acc.quota is not None and acc.quota.oversold_by == 71 - 50
    integrity = chaos_analysis.integrity(acc)
    assert (integrity["lost"], integrity["oversold"]) == (1, 21)


def test_a_failed_accounting_keeps_its_reason():
    raw = {"ok": False, "problems": ["accounting failed: 502"], "error": "502"}
    acc = Accounting.from_dict(raw)
    assert not acc.checked and acc.problems == ("accounting failed: 502",)
    assert acc.to_dict() == raw
    assert acc.lines() == ["accounting FAILED: accounting failed: 502"]


def test_bench_reads_the_summary_by_attribute(summary):
    samples = {"t_start": run.T_START, "cluster": run.cluster_samples()}
    fig = bench_analysis.system_figures(summary, samples, 2)
    assert fig["sustained_per_min"] == summary.throughput.sustained.completed_per_min
    assert fig["accounting_ok"] is True and fig["cpu_s_per_purchase"]["pg"] == round(30 / 71, 4)
    one_x = next(p for p in fig["phases"] if p["phase"] == "1x")
    # the samples grow web by 0.5 CPU-s per second: 0.5 cores in every window
    assert one_x["cores_by_component"]["web"] == pytest.approx(0.5)
    failed = dataclasses.replace(summary, accounting=Accounting(ok=False, problems=("502",)))
    assert bench_analysis.system_figures(failed, None, 2)["accounting_ok"] is False


# --- the HTML reports ----------------------------------------------------------------------


def test_load_report_shows_the_key_figures(summary, records):
    html = _load_html(summary, records)
    assert "pretix-cluster load test: shop flow, phases shape" in html
    assert "attempted<b>78</b>" in html and "completed<b>71</b>" in html
    assert "failed<b>6 (7.79 %)</b>" in html
    assert f"<b>{summary.throughput.sustained.completed_per_min}</b>" in html
    assert "Accounting OK" in html and "unacknowledged phantom" in html
    # five charts over time, CPU over time, CPU per purchase
    assert html.count("<svg") == 7 and "load generator (not cluster)" in html
    assert html.count("<tr>") > 20


def test_load_report_escapes_what_the_run_and_shop_said(summary, records):
    html = _load_html(summary, records)
    assert "<script>" not in html
    # the event name, a buyer's error message, a Locust request name
    assert html.count(ESCAPED) == 3


def test_load_report_shows_the_wait_in_line_apart(held, held_records):
    html = _load_html(held, held_records)
    assert "p95 purchase (admitted, without the wait)<b>" in html
    assert "waited in line<b>18</b>" in html and "wait p50 / p95 / max<b>9.0 / " in html
    assert "<h2>Waiting room</h2>" in html and "72 times; longest line 14" in html
    tenx = next(p for p in held.throughput.phases if p.phase == "10x")
    q = tenx.queue_s
    assert (
        f"<td>10x</td><td>{tenx.waited}</td><td>{q.p50}</td><td>{q.p95}</td><td>{q.max}</td>"
        f"<td>{tenx.purchase_s.p95}</td>" in html
    )
    assert "<td>1x</td><td>0</td><td></td>" in html  # nobody waited in 1x


def test_the_terminal_summary_names_the_wait_only_when_there_was_one(summary, held, tmp_path):
    with loadtest_cli.out.capture() as without:
        loadtest_cli.print_summary(summary, tmp_path)
    with loadtest_cli.out.capture() as with_wait:
        loadtest_cli.print_summary(held, tmp_path)
    assert "waiting room" not in without.get()
    assert (
        "waiting room: 18 buyers waited, wait p50/p95/max 9.0/10.0/10.0 s; purchase p95 of the "
        f"admitted buyers {held.latency_s.purchase.p95:.2f} s without the wait"
    ) in " ".join(with_wait.get().split())


def _chaos_figures(number, title, **over):
    figures = {
        "scenario": number,
        "name": f"s{number}",
        "title": title,
        "fault": "docker kill <pg-1>",
        "target": {"node": "pg-1", "role": "primary"},
        "integrity": chaos_analysis.integrity(Accounting.from_dict(run.accounting(run.ledger()))),
        "timeline": {
            "detected_at": 1002.0,
            "rejoined_at": 1040.0,
            "detect_s": 2.0,
            "repair_s": 8.3,
            "first_signal": "haproxy",
            "signals_s": {"haproxy": 2.0, "patroni": 3.1},
            "failover": True,
        },
        "window": {"first_ok_after_at": 1010.0, "window_s": 9.5, "failed_in_window": 2},
        "healthy_at": 1050.0,
        "healthy_s": 50.0,
    }
    figures |= over
    figures["verdict"] = chaos_analysis.verdict(figures)
    return figures


def test_chaos_report_shows_each_scenarios_figures_and_escapes():
    ok = _chaos_figures(1, "PostgreSQL primary killed")
    bad = _chaos_figures(4, "Redis <master> killed", healthy_at=None)
    html = chaos_report.render_html([ok, bad], {"stack": "<t>"})
    assert "<td>8.3</td>" in html and "<td>9.5</td>" in html
    assert '<span class="pass">pass</span>' in html and '<tr class="fail">' in html
    assert "fails because: status did not become healthy" in html
    assert "stack: &lt;t&gt;" in html and "docker kill &lt;pg-1&gt;" in html
    assert "Redis &lt;master&gt; killed" in html and "<master>" not in html


def test_bench_report_shows_every_table_and_escapes(summary):
    fig = bench_analysis.system_figures(summary, None, 2)
    spec = ClusterSpec()
    doc = {
        "host_cores": 2,
        "target_per_min": 30,
        "duration_s": 240,
        "isolated": True,
        "cluster_shape": {"web": "2 x <b>2</b>"},
        "baseline_shape": {"web": "1"},
        "runs": {"baseline": {"shop": fig}, "cluster": {"shop": fig}},
        "comparison": {"shop": bench_analysis.compare(fig, fig)},
        "saturation": None,
        "capacity": bench_analysis.capacity_model(fig, spec, 800.0),
        "errors": ["cluster api: <boom>"],
        "warnings": [],
    }
    html = bench_report.html(doc)
    for title, _, rows in bench_report.tables(doc):
        assert f"<h2>{title}</h2>" in html
        assert f"<td>{rows[0][0]}</td>" in html
    assert "capacity arithmetic" in html and 'href="cluster-shop/report.html"' in html
    assert escape("\n".join(doc["capacity"]["arithmetic"])) in html  # "->" escaped
    assert (
        "web 2 x &lt;b&gt;2&lt;/b&gt;" in html and "run failed: cluster api: &lt;boom&gt;" in html
    )


def test_bench_shows_the_wait_next_to_the_purchase_p95(summary, held):
    base = bench_analysis.system_figures(summary, None, 2)
    clus = bench_analysis.system_figures(held, None, 2)
    tenx = clus["phases"][-1]
    assert (tenx["waited"], tenx["queue_p95_s"]) == (held.throughput.phases[-1].waited, 10.0)
    assert clus["phases"][0]["waited"] == 0 and base["waited"] == 0
    doc = {
        "runs": {"baseline": {"shop": base}, "cluster": {"shop": clus}},
        "comparison": {"shop": bench_analysis.compare(base, clus)},
    }
    [(_, head, rows)] = [
        t for t in bench_report.tables(doc) if t[0] == "shop flow: baseline vs cluster"
    ]
    by_phase = {row[0]: dict(zip(head, row, strict=True)) for row in rows}
    assert by_phase["10x"]["cluster p95 s"] == (
        f"{tenx['p95_s']:.2f} (+ wait p95 10.0 s, {tenx['waited']} waited)"
    )
    assert by_phase["10x"]["base p95 s"] == f"{base['phases'][-1]['p95_s']:.2f}"
    assert by_phase["1x"]["cluster p95 s"] == f"{clus['phases'][1]['p95_s']:.2f}"
    answer = bench_report.answer(doc)
    assert any(line.startswith("cluster shop: the waiting room held 18 buyers") for line in answer)
    assert not any("baseline shop: the waiting room" in line for line in answer)


# --- the chart layout ------------------------------------------------------------------------


def test_line_chart_breaks_at_gaps_and_draws_lone_points():
    chart = svgplot.line_chart(
        "t", [svgplot.Series("a", [(0, 1.0), (1, 2.0), (2, None), (3, 1.0)])], x_range=(0, 3)
    )
    assert [len(t.points) for t in chart.traces] == [2, 1]
    # x 0..3 spans the plot; y ticks start at 0 at the bottom
    assert chart.traces[0].points[0][0] == chart.left
    assert chart.traces[1].points[0][0] == chart.left + chart.plot_width
    assert chart.y_ticks[0] == svgplot.Tick(chart.top + chart.plot_height, "0")


def test_legend_wraps_and_grows_the_chart():
    names = [f"component number {i}" for i in range(12)]
    chart = svgplot.line_chart("t", [svgplot.Series(n, [(0, 1.0)]) for n in names])
    rows = sorted({item.y for item in chart.legend})
    assert len(rows) > 1
    assert chart.height == 250 + svgplot.LEGEND_ROW * len(rows)


def test_bar_chart_sorts_largest_first():
    chart = svgplot.bar_chart("t", [("pg", 0.1), ("web", 0.4)])
    assert [b.label for b in chart.bars] == ["web", "pg"]
    assert chart.bars[1].width == pytest.approx(chart.bars[0].width / 4)
