"""Placement: members pinned to distinct nodes, sticky labels, refusals; media per kind."""

import configparser
import json
from pathlib import Path

import pytest

from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.images.build import COMPONENTS, ImageSet
from pretix_cluster.render import placement
from pretix_cluster.render.placement import Node, entry_label, member_label
from pretix_cluster.render.topology import HA, SINGLE_NODE
from pretix_cluster.secrets import SECRET_NAMES
from pretix_cluster.spec import parse_spec

FIXTURES = Path(__file__).parents[1] / "fixtures" / "swarm"
IMAGES = ImageSet({c: f"pretix-cluster/{c}:unit" for c in COMPONENTS})
VALUES = {name: f"value-of-{name}-0123456789" for name in SECRET_NAMES}
SHARED = {"media": {"kind": "bind", "path": "/srv/shared/media"}}


def _recorded_node() -> Node:
    [attrs] = json.loads((FIXTURES / "node-inspect-single.json").read_text())
    return Node.from_inspect(attrs)


def _nodes(*hostnames: str, labels: dict[str, dict[str, str]] | None = None) -> list[Node]:
    labels = labels or {}
    return [Node(f"id-{h}", h, True, labels.get(h, {})) for h in hostnames]


def test_a_recorded_node_parses():
    node = _recorded_node()
    assert node.hostname == "vm"
    assert node.ready
    assert node.labels == {}
    assert len(node.id) == 25


def test_one_node_holds_everything_as_before():
    spec = parse_spec({})
    plan = placement.plan(spec, [_recorded_node()])
    assert set(plan.members) == set(spec.stateful_nodes)
    assert set(plan.members.values()) == {"vm"}
    assert plan.entry == ["vm"]


def test_three_nodes_get_one_member_of_each_kind_each():
    spec = parse_spec(SHARED)
    plan = placement.plan(spec, _nodes("a", "b", "c"))
    for kind, group in spec.member_groups.items():
        hosts = [plan.members[m] for m in group]
        assert sorted(hosts) == ["a", "b", "c"], kind
    assert plan.entry == ["a", "b", "c"]


def test_fewer_nodes_than_members_is_refused_before_anything():
    with pytest.raises(UserError, match=r"3 etcd members need 3 nodes.*2 are eligible"):
        placement.plan(parse_spec(SHARED), _nodes("a", "b"))


def test_one_named_node_runs_everything_there():
    spec = parse_spec(SHARED | {"placement": {"nodes": ["b"]}})
    plan = placement.plan(spec, _nodes("a", "b", "c"))
    assert set(plan.members.values()) == {"b"}


def test_a_named_node_that_does_not_exist_is_refused():
    spec = parse_spec(SHARED | {"placement": {"entry_nodes": ["x"]}})
    with pytest.raises(UserError, match="entry_nodes names x"):
        placement.plan(spec, _nodes("a", "b", "c"))


def test_members_stay_where_their_data_is():
    spec = parse_spec(SHARED)
    stack = spec.stack
    labels = {
        "c": {member_label(stack, "pg-1"): "true"},
        "a": {member_label(stack, "pg-3"): "true"},
    }
    plan = placement.plan(spec, _nodes("a", "b", "c", labels=labels))
    assert plan.members["pg-1"] == "c"
    assert plan.members["pg-3"] == "a"
    assert plan.members["pg-2"] == "b"


def test_a_member_whose_node_left_the_swarm_is_placed_anew():
    spec = parse_spec(SHARED)
    first = placement.plan(spec, _nodes("a", "b", "c"))
    labels = {h: {} for h in "abcd"}
    for member, host in first.members.items():
        labels[host][member_label(spec.stack, member)] = "true"
    del labels["b"]
    again = placement.plan(spec, _nodes("a", "c", "d", labels=labels))
    moved = {m for m, h in first.members.items() if h == "b"}
    assert moved
    assert all(again.members[m] == "d" for m in moved)
    assert all(again.members[m] == h for m, h in first.members.items() if m not in moved)


def test_a_member_on_a_node_no_longer_eligible_is_refused():
    spec = parse_spec(SHARED | {"placement": {"nodes": ["a", "b", "d"]}})
    labels = {"c": {member_label(spec.stack, "redis-2"): "true"}}
    with pytest.raises(UserError, match="redis-2 keeps its data on node c"):
        placement.plan(spec, _nodes("a", "b", "c", "d", labels=labels))


def test_a_down_node_gets_no_new_member():
    spec = parse_spec(SHARED)
    nodes = [*_nodes("a", "b", "c"), Node("id-0", "0down", False, {})]
    plan = placement.plan(spec, nodes)
    assert "0down" not in plan.members.values()


def test_labels_per_node_name_only_this_stack():
    spec = parse_spec(SHARED)
    nodes = _nodes("a", "b", "c")
    plan = placement.plan(spec, nodes)
    wanted = plan.labels_by_node(spec.stack, nodes)
    assert wanted["id-a"][entry_label(spec.stack)] == "true"
    assert sum(len(v) for v in wanted.values()) == len(spec.stateful_nodes) + 3


def test_node_local_media_on_several_nodes_is_refused():
    with pytest.raises(UserError, match=r"media.*bind, nfs or s3"):
        placement.plan(parse_spec({}), _nodes("a", "b", "c"))


# --- the stack: constraints and media -----------------------------------------------------


def _ha_stack(raw: dict) -> dict:
    spec = parse_spec(raw)
    return HA.stack(spec, IMAGES, HA.files(spec, VALUES))


def test_each_member_is_pinned_to_its_label_and_nginx_to_entry_nodes():
    stack = _ha_stack({})
    services = stack["services"]
    assert services["pg-2"]["deploy"]["placement"]["constraints"] == [
        "node.labels.pretix-cluster.pretix.pg-2 == true"
    ]
    nginx = services["nginx"]["deploy"]
    assert nginx["mode"] == "global"
    assert "replicas" not in nginx
    assert nginx["placement"]["constraints"] == ["node.labels.pretix-cluster.pretix.entry == true"]
    for name in ("web", "worker", "haproxy"):
        assert services[name]["deploy"]["placement"]["preferences"] == [{"spread": "node.id"}]
    assert "placement" not in services["cron"]["deploy"]


def test_the_single_node_topology_pins_nothing():
    spec = parse_spec({})
    stack = SINGLE_NODE.stack(spec, IMAGES, SINGLE_NODE.files(spec, VALUES))
    assert not any("placement" in s["deploy"] for s in stack["services"].values())
    assert SINGLE_NODE.placement(spec, _nodes("a", "b")) is None


def test_media_volume_by_default():
    stack = _ha_stack({})
    assert stack["volumes"]["media"] == {}
    assert stack["services"]["web"]["volumes"] == ["media:/data/media"]
    assert stack["services"]["nginx"]["volumes"] == ["media:/data/media:ro"]


def test_media_on_nfs_is_a_volume_every_node_mounts():
    stack = _ha_stack(
        {"media": {"kind": "nfs", "nfs_server": "nfs.example.org", "path": "/export/pretix"}}
    )
    assert stack["volumes"]["media"] == {
        "driver": "local",
        "driver_opts": {
            "type": "nfs",
            "o": "addr=nfs.example.org,nfsvers=4.1,rw,hard,timeo=600",
            "device": ":/export/pretix",
        },
    }
    assert stack["services"]["worker"]["volumes"] == ["media:/data/media"]


def test_media_on_a_shared_directory_is_a_bind_mount():
    stack = _ha_stack(SHARED)
    assert "media" not in stack["volumes"]
    web_mount = stack["services"]["web"]["volumes"][0]
    assert web_mount == {
        "type": "bind",
        "source": "/srv/shared/media",
        "target": "/data/media",
        "read_only": False,
    }
    assert stack["services"]["nginx"]["volumes"][0]["read_only"] is True


@pytest.mark.parametrize(
    ("media", "reason"),
    [
        ({"kind": "nfs", "path": "/x"}, "needs nfs_server"),
        ({"kind": "bind"}, "needs path"),
        ({"kind": "bind", "path": "relative"}, "absolute"),
        ({"kind": "s3", "s3_bucket": "b"}, "needs s3_endpoint"),
        ({"kind": "ceph"}, "media.kind"),
    ],
)
def test_media_kinds_need_their_settings(media, reason):
    with pytest.raises(UserError, match=reason):
        parse_spec({"media": media})


def test_new_members_never_join_a_kind_mate_even_on_the_least_loaded_node():
    spec = parse_spec(SHARED)
    stack = spec.stack
    labels = {
        "a": {member_label(stack, "pg-1"): "true"},
        "b": {member_label(stack, "etcd-1"): "true"},
        "c": {member_label(stack, "etcd-2"): "true"},
        "d": {member_label(stack, "etcd-3"): "true"},
    }
    plan = placement.plan(spec, _nodes("a", "b", "c", "d", labels=labels))
    pg_hosts = [plan.members[m] for m in spec.pg_nodes]
    assert len(set(pg_hosts)) == 3, pg_hosts


def test_a_recorded_node_says_its_role_and_address():
    node = _recorded_node()
    assert (node.role, node.availability, node.manager_status) == ("manager", "active", "leader")
    assert node.address
    labelled = Node(
        "x", "x", True, {member_label("shop", "pg-1"): "true", entry_label("shop"): "true"}
    )
    assert labelled.members("shop") == ["pg-1"]
    assert labelled.is_entry("shop")
    assert labelled.members("other") == []


# --- media in S3 ----------------------------------------------------------------------------

S3 = {"media": {"kind": "s3", "s3_endpoint": "https://s3.example.org", "s3_bucket": "tickets"}}
SETTINGS_MODULE = (
    Path(__file__).parents[2] / "src/pretix_cluster/images/pretix/pretix_cluster_settings.py"
)


def _pretix_cfg(raw: dict, values: dict[str, str]) -> configparser.ConfigParser:
    spec = parse_spec(raw)
    parsed = configparser.RawConfigParser()
    parsed.read_string(HA.files(spec, values)["pretix.cfg"].content)
    return parsed


def test_s3_media_reach_pretix_through_its_settings_module():
    values = VALUES | {"s3_access_key": "AKIA-unit", "s3_secret_key": "s3-secret-unit"}
    cfg = _pretix_cfg(S3, values)
    section = dict(cfg.items("pretix_cluster_s3"))
    assert section == {
        "endpoint": "https://s3.example.org",
        "bucket": "tickets",
        "region": "",
        "access_key": "AKIA-unit",
        "secret_key": "s3-secret-unit",
    }
    # The settings module in the image reads exactly these keys of exactly this section.
    source = SETTINGS_MODULE.read_text()
    assert 'S3_SECTION = "pretix_cluster_s3"' in source
    for key in section:
        assert f'_s3["{key}"]' in source or f'_s3.get("{key}")' in source, key


def test_no_s3_section_for_other_media():
    assert not _pretix_cfg({}, VALUES).has_section("pretix_cluster_s3")


def test_s3_without_the_operators_credentials_is_refused(tmp_path):
    spec = parse_spec(S3)
    cluster = Cluster(spec, tmp_path)
    with pytest.raises(UserError, match=r"s3_access_key and .*s3_secret_key"):
        cluster.files()
    cluster.secrets.write("s3_access_key", "AKIA-unit")
    cluster.secrets.write("s3_secret_key", "s3-secret-unit")
    assert "secret_key=s3-secret-unit" in cluster.files()["pretix.cfg"].content


# --- images from a registry -----------------------------------------------------------------


def test_the_stack_names_the_registrys_images(tmp_path):
    spec = parse_spec(SHARED | {"images": {"registry": "registry.example.org:5000/shop"}})
    cluster = Cluster(spec, tmp_path)
    local = Cluster(parse_spec(SHARED), tmp_path).images()
    pulled = cluster.images()
    for component, image in local.tags.items():
        assert pulled[component] == f"registry.example.org:5000/shop/{image}"
    stack = HA.stack(spec, pulled, HA.files(spec, VALUES))
    assert stack["services"]["pg-1"]["image"] == pulled["postgres"]


def test_a_registry_that_does_not_answer_is_one_sentence():
    from pretix_cluster.images.registry import check_answers

    with pytest.raises(UserError, match=r"127\.0\.0\.1:9 does not answer"):
        check_answers("127.0.0.1:9", timeout=1)
