"""What the cluster exposes and to whom: etcd's users, Patroni's etcd login, HAProxy's
stats login, and the fingerprint that ties data volumes to their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pretix_cluster import swarm
from pretix_cluster.daemons import etcd, patroni
from pretix_cluster.errors import UserError
from pretix_cluster.images.build import COMPONENTS, ImageSet
from pretix_cluster.render.stack import MADE_WITH_LABEL
from pretix_cluster.render.topology import HA, SINGLE_NODE
from pretix_cluster.secrets import data_fingerprint
from pretix_cluster.spec import PORTS, ClusterSpec

FIXTURES = Path(__file__).parent.parent / "fixtures"
PG_PASSWORDS = ("pg_superuser_password", "pg_replication_password", "pg_rewind_password")
IMAGES = ImageSet({c: f"pretix-cluster/{c}:unit" for c in COMPONENTS})


@pytest.fixture
def spec():
    return ClusterSpec()


def test_patroni_logs_in_to_etcd_as_its_own_user(spec, values):
    config = yaml.safe_load(HA.files(spec, values)["patroni.yml"].content)
    assert config["etcd3"]["username"] == etcd.PATRONI_USER
    assert config["etcd3"]["password"] == values["etcd_patroni_password"]


def test_etcd_is_reached_by_patroni_only(spec, values):
    stack = HA.stack(spec, IMAGES, HA.files(spec, values))
    on_dcs = {name for name, s in stack["services"].items() if "dcs" in s["networks"]}
    assert on_dcs == {*spec.etcd_members, *spec.pg_nodes}
    for member in spec.etcd_members:
        assert stack["services"][member]["networks"] == ["dcs"]
        assert "etcd_root_password" in {s["source"] for s in stack["services"][member]["secrets"]}


def test_the_baseline_declares_only_the_networks_it_uses(spec, values):
    stack = SINGLE_NODE.stack(spec, IMAGES, SINGLE_NODE.files(spec, values))
    assert "dcs" not in stack["networks"]


def test_etcd_auth_setup_creates_users_and_a_prefix_role_then_enables_auth():
    steps = etcd.auth_setup_steps(PORTS.etcd_client, patroni.PATRONI_NAMESPACE)
    commands = [" ".join(s.command) for s in steps]
    # Last and once: an interrupted run is finished by the next, which needs no login.
    assert [c for c in commands if c.endswith("auth enable")] == [commands[-1]]
    grant = next(c for c in commands if "grant-permission" in c)
    assert grant.endswith(f"patroni --prefix=true readwrite {patroni.PATRONI_NAMESPACE}")
    added = {s.command[4]: s.password for s in steps if s.command[2:4] == ("user", "add")}
    assert added == {"root": "etcd_root_password", "patroni": "etcd_patroni_password"}
    # The new users' passwords come from stdin, never from the command line.
    assert all("--interactive=false" in s.command for s in steps if s.password)
    assert all(":" not in part for s in steps for part in s.command[2:])


def test_an_auth_step_done_by_an_earlier_run_counts_as_done():
    step = etcd.auth_setup_steps(PORTS.etcd_client, patroni.PATRONI_NAMESPACE)[0]
    assert step.succeeded(1, (FIXTURES / "etcd/user_add_again.txt").read_text())
    assert not step.succeeded(1, "Error: context deadline exceeded")


def test_etcd_without_credentials_says_that_it_wants_a_login():
    assert etcd.auth_enabled((FIXTURES / "etcd/get_without_credentials.txt").read_text())
    assert not etcd.auth_enabled("")  # a key that does not exist: no output, auth off


def test_status_asks_etcd_as_root_through_the_wrapper():
    assert etcd.etcdctl_command(PORTS.etcd_client, "endpoint", "status")[0] == "etcdctl-root"


def test_haproxy_stats_want_a_login(spec, values):
    config = HA.files(spec, values)["haproxy.cfg"].content
    assert f"insecure-password {values['haproxy_stats_password']}" in config
    assert "http-request auth realm stats if !{ path /healthz }" in config


def test_the_fingerprint_follows_the_data_secrets_only(values):
    print_ = data_fingerprint(values)
    assert data_fingerprint(dict(values)) == print_
    assert data_fingerprint(values | {"django_secret": "other"}) == print_
    # The passwords PostgreSQL's and etcd's data keep.
    for name in (
        *PG_PASSWORDS,
        "pg_pretix_password",
        "etcd_root_password",
        "etcd_patroni_password",
    ):
        assert data_fingerprint(values | {name: "other"}) != print_, name
    assert not any(print_ in v or v in print_ for v in values.values())


def test_every_data_volume_carries_the_fingerprint(spec, values):
    stack = HA.stack(spec, IMAGES, HA.files(spec, values), data_fingerprint(values))
    for node in spec.stateful_nodes:
        assert stack["volumes"][f"{node}-data"]["labels"] == {
            MADE_WITH_LABEL: data_fingerprint(values)
        }


def test_volumes_made_with_other_secrets_are_refused(monkeypatch):
    volumes = [("s_pg-1-data", "aaaa"), ("s_redis-1-data", None)]
    monkeypatch.setattr(swarm, "stack_volume_labels", lambda client, stack: volumes)
    swarm.refuse_foreign_data(None, "s", "aaaa", "/state/secrets")  # same secrets, unlabelled
    with pytest.raises(UserError, match=r"s_pg-1-data of s .* `down --purge`"):
        swarm.refuse_foreign_data(None, "s", "bbbb", "/state/secrets")
