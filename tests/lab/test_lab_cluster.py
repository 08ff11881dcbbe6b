"""The cluster across three lab machines: placement, a purchase, and the loss of a machine.

`lab up` brings up three nested Docker machines as a swarm of three managers and
deploys the cluster with the same `up` as on one machine (images through the
lab's registry, media in the machines' shared directory). Then: each member of
a kind on its own machine, a ticket bought through the front, and the machine
holding the PostgreSQL primary killed under load: nothing lost, oversold or
duplicated, another primary serving, the machine back by itself once started.

Runs after the single-machine tests (its own pytest session, see the Makefile),
with its own lab, stack name, port and state folder; always ends with
`lab down --purge`. Times are reported, not asserted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pretix_cluster.cluster import Cluster
from pretix_cluster.loadtest.buyer import buy_ticket
from pretix_cluster.loadtest.pretixapi import PretixApi
from tests.commandline import cli
from tests.lab.deployed import deployed_lab

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".state" / "pclab"
LAB = "pclab"  # also the stack's name
PORT = 18580
CHAOS = ("--users", "4", "--duration", "150", "--fault-at", "40", "--recover-timeout", "300")


@pytest.fixture(scope="module")
def lab_env() -> dict[str, str]:
    """The lab up with the cluster deployed; the environment `lab env` gives."""
    with deployed_lab(LAB, PORT, STATE) as env:
        yield env


def lab_cluster(env: dict[str, str]) -> Cluster:
    os.environ["DOCKER_HOST"] = env["DOCKER_HOST"]  # for the SDK calls of this process
    return Cluster.from_file(Path(env["PRETIX_CLUSTER_SPEC"]))


def test_each_member_of_a_kind_runs_on_its_own_machine(lab_env):
    nodes = json.loads(cli("nodes", "list", "--json", env=lab_env).stdout)
    assert len(nodes) == 3
    assert all(n["ready"] and n["role"] == "manager" for n in nodes), nodes
    assert all(n["entry"] for n in nodes), nodes
    spec = lab_cluster(lab_env).spec
    for kind, members in spec.member_groups.items():
        hosts = {n["hostname"] for n in nodes for m in n["members"] if m in members}
        assert len(hosts) == len(members), (kind, nodes)
    assert cli("status", env=lab_env, check=False).returncode == 0


def test_a_ticket_bought_through_the_front_is_an_order(lab_env):
    cluster = lab_cluster(lab_env)
    shop = cluster.shop_info()
    verify = cluster.shop_trust().verify()  # over HTTPS, trusting the local CA
    result = buy_ticket(
        cluster.spec.cluster.url,
        shop["organizer"],
        shop["event"],
        shop["item_id"],
        email="lab-buyer@example.org",
        name="Lab Buyer",
        timeout=120,
        verify=verify,
    )
    api = PretixApi(cluster.spec.local_url(), cluster.api_token(), shop["organizer"], verify=verify)
    order = api.order(shop["event"], result.order_code)
    assert order is not None and order["email"] == "lab-buyer@example.org"


@pytest.fixture(scope="module")
def machine_loss(lab_env, tmp_path_factory) -> tuple[dict, object]:
    out = tmp_path_factory.mktemp("lab-chaos")
    env = lab_env | {"PRETIX_LAB": LAB}
    run = cli("chaos", "run", "node-loss-primary", *CHAOS, "--out", str(out), env=env, check=False)
    print(run.stdout[-4000:], run.stderr[-4000:])
    files = [p for p in out.glob("[0-9]*.json") if not p.name.endswith(".samples.json")]
    assert files, run.stderr[-3000:]
    return json.loads(files[0].read_text()), run


def test_losing_the_primarys_machine_loses_no_order(machine_loss):
    figures, _ = machine_loss
    integ = figures.get("integrity") or {}
    assert integ.get("checked"), figures.get("error") or figures.get("accounting")
    assert integ["lost"] == 0, figures["accounting"]["missing"]
    assert integ["not_live"] == 0, figures["accounting"]["completed_but_not_live"]
    assert integ["oversold"] == 0, figures["accounting"]["quota"]
    assert integ["duplicated"] == 0, figures["accounting"]["duplicates"]
    assert integ["completed_by_buyers"] > 0


def test_another_primary_serves_and_the_machine_rejoins_by_itself(machine_loss, lab_env):
    figures, run = machine_loss
    assert "error" not in figures, figures["error"]
    seen = figures["timeline"]
    assert seen["failover"] is True, seen  # another node leads: the old one was dead
    assert seen["repaired_at"] is not None, seen
    assert seen["rejoined_at"] is not None, seen  # the old primary, back as a replica
    assert figures["window"]["first_ok_after_at"] is not None, figures["window"]
    assert figures["healthy_at"] is not None, figures["status_checks"][-3:]
    assert figures["verdict"]["passed"], figures["verdict"]["reasons"]
    assert run.returncode == 0, run.stdout[-3000:]
    print(
        f"node-loss-primary on {figures['target']['machine']}: detect {seen['detect_s']} s "
        f"({seen['first_signal']}), repaired {seen['repair_s']} s, window "
        f"{figures['window']['window_s']} s, rejoined {seen['rejoin_s']} s, healthy "
        f"{figures['healthy_s']} s, tasks back {figures['tasks_back_s']}"
    )
