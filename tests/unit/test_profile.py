"""bench --profile's arithmetic on py-spy's real output, and the flame graph's layout.

The fixture is 25 stacks of a real recording (`py-spy record --subprocesses --nonblocking
--gil --format raw`) of the baseline's pretix container under the bench's load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pretix_cluster.bench.profile import Stacks, Statement, library_of, view_of
from pretix_cluster.reports import flamegraph

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pyspy" / "baseline_web_gil.txt"


@pytest.fixture(scope="module")
def recorded() -> Stacks:
    return Stacks.from_collapsed(FIXTURE.read_text())


def test_collapsed_stacks_parse_with_their_process_frames(recorded):
    assert len(recorded.counts) == 25 and recorded.total == 270
    first = next(iter(recorded.counts))
    assert first[0].startswith("process ") and "tini" in first[0]


def test_samples_without_a_python_frame_are_kept_apart(recorded):
    python = recorded.python()
    assert python.total == 270 - 154  # two stacks of process frames only: 81 + 73
    assert all(not frames[-1].startswith("process ") for frames in python.counts)


def test_views_and_tasks_name_the_request_type(recorded):
    shares = dict(recorded.python().shares(view_of))
    assert "presale/views/checkout.py:dispatch" in shares  # not the decorator around it
    assert "base/services/orders.py:perform_order" in shares  # not celery's task wrapper
    assert not any(v.startswith(("api/middleware", "presale/views/__init__")) for v in shares)
    assert shares["(imports: a new worker process loading pretix)"] > 0
    assert sum(shares.values()) == pytest.approx(1.0, abs=0.001)


def test_libraries_are_the_innermost_frames_package(recorded):
    shares = dict(recorded.python().shares(library_of))
    assert {"django.db", "babel", "copy"} <= set(shares)
    assert library_of(("f (django/template/base.py:1)",)) == "django.template"
    assert library_of(("f (psycopg2/extras.py:9)",)) == "psycopg2"


def test_statements_parse_from_psql():
    line = '812\t1534.2\t1.889\t812\tSELECT "pretixbase_quota"."id" FROM x WHERE a = $1'
    st = Statement.from_psql_line(line)
    assert (st.calls, st.total_ms, st.mean_ms, st.rows) == (812, 1534.2, 1.889, 812)
    assert st.query.startswith('SELECT "pretixbase_quota"')


def test_flame_graph_boxes_are_as_wide_as_their_share():
    stacks = {("a", "b"): 3, ("a", "c"): 1, ("d",): 4}
    graph = flamegraph.layout("t", stacks)
    boxes = {b.frame: b for b in graph.boxes}
    assert boxes["all"].width == flamegraph.WIDTH
    assert boxes["a"].width == pytest.approx(flamegraph.WIDTH / 2)
    assert boxes["b"].x == boxes["a"].x and boxes["c"].x == pytest.approx(boxes["b"].width)
    assert boxes["b"].y < boxes["a"].y < boxes["all"].y  # callees above their callers
    svg = flamegraph.svg(graph)
    assert svg.startswith("<?xml") and "<title>b (3 samples, 37.50 %)</title>" in svg


def test_flame_graph_of_a_recording_drops_unreadable_slivers(recorded):
    graph = flamegraph.layout("baseline web", recorded.python().counts)
    assert graph.total == 116
    assert all(b.share >= flamegraph.MIN_SHARE for b in graph.boxes)
    assert "<script" not in flamegraph.svg(graph)
