"""Chaos under a purchase load: a hung PostgreSQL primary, and the whole database gone.

Runs last in the session (file name) because it disturbs the cluster. Each
scenario runs through the real command line against the session's test
cluster: steady buyers, the fault, recovery, then the ledger against the
database. Strict: nothing lost, oversold or duplicated, the failed nodes back
in their place and `status` healthy. Times are reported, not asserted (the
command's own bounded waits decide "did not recover").

- pg-primary-freeze: the primary is paused past Patroni's ttl, so a replica must
  be promoted (a kill is healed by Swarm restarting the same node inside the
  ttl: no failover at all);
- pg-outage: every PostgreSQL node cut off for 90 s; the application tier's
  liveness checks must not depend on it, so Swarm replaces no web, worker or
  cron task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pretix_cluster.cluster import Cluster

from .conftest import cli

pytestmark = pytest.mark.integration

SCENARIOS = ("15", "18")  # pg-primary-freeze, pg-outage
# The outage lasts 90 s from 35 s in: 55 s of load after it for sales to resume.
LOAD = ("--users", "4", "--duration", "180", "--fault-at", "35", "--recover-timeout", "300")


@pytest.fixture(scope="module")
def chaos_results(cluster: Cluster, spec_file: Path, tmp_path_factory) -> tuple[list[dict], object]:
    out = tmp_path_factory.mktemp("chaos")
    result = cli(
        "chaos",
        "run",
        *SCENARIOS,
        *LOAD,
        "--out",
        str(out),
        spec_file=spec_file,
        check=False,
        timeout=1800,
    )
    print(result.stdout[-4000:], result.stderr[-4000:])
    files = sorted(p for p in Path(out).glob("[0-9]*.json") if not p.name.endswith(".samples.json"))
    return [json.loads(p.read_text()) for p in files], result


def test_every_scenario_ran_and_the_report_was_written(chaos_results):
    results, run = chaos_results
    assert sorted(str(r["scenario"]) for r in results) == sorted(SCENARIOS), run.stderr[-2000:]
    assert (Path(results[0]["load_dir"]).parent / "report.html").exists()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nothing_lost_oversold_or_duplicated(chaos_results, scenario):
    figures = _one(chaos_results, scenario)
    integ = figures.get("integrity") or {}
    assert integ.get("checked"), figures.get("error") or figures.get("accounting")
    assert integ["lost"] == 0, figures["accounting"]["missing"]
    assert integ["not_live"] == 0, figures["accounting"]["completed_but_not_live"]
    assert integ["oversold"] == 0, figures["accounting"]["quota"]
    assert integ["duplicated"] == 0, figures["accounting"]["duplicates"]
    assert integ["completed_by_buyers"] > 0


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_cluster_noticed_recovered_and_the_node_rejoined(chaos_results, scenario):
    figures = _one(chaos_results, scenario)
    assert "error" not in figures, figures["error"]
    seen = figures["timeline"]
    assert seen["detected_at"] is not None, seen
    assert seen["repaired_at"] is not None, seen
    # A node never seen out of its place (Swarm restarted it before Patroni or Sentinel
    # noticed) has nothing to rejoin; one that was seen out must be back.
    assert seen["rejoined_at"] is not None or not seen["rejoin_seen_failing"], seen
    assert figures["window"]["first_ok_after_at"] is not None, figures["window"]
    assert figures["healthy_at"] is not None, figures["status_checks"][-3:]
    assert figures["verdict"]["passed"], figures["verdict"]["reasons"]
    print(
        f"scenario {scenario}: detect {seen['detect_s']} s ({seen['first_signal']}), "
        f"repaired {seen['repair_s']} s, window {figures['window']['window_s']} s, "
        f"rejoined {seen['rejoin_s']} s, healthy {figures['healthy_s']} s"
    )


def test_a_hung_primary_was_replaced_by_another_node(chaos_results):
    figures = _one(chaos_results, "15")
    assert figures["timeline"]["failover"] is True, figures["timeline"]
    assert figures["timeline"]["signals_s"]["patroni_leader_changed"] is not None


def test_a_database_outage_replaced_no_application_task(chaos_results):
    figures = _one(chaos_results, "18")
    assert figures["tasks_replaced"] == {"cron": 0, "web": 0, "worker": 0}, figures
    print(f"pg-outage: buyers' first purchase after the fault {figures['window']}")


def test_the_command_passed_and_the_cluster_is_healthy_at_the_end(chaos_results, spec_file):
    _, run = chaos_results
    assert run.returncode == 0, run.stdout[-3000:]
    assert cli("status", spec_file=spec_file, check=False).returncode == 0


def _one(chaos_results, scenario: str) -> dict:
    results, run = chaos_results
    found = [r for r in results if str(r["scenario"]) == scenario]
    assert found, f"scenario {scenario} did not run: {run.stderr[-2000:]}"
    return found[0]
