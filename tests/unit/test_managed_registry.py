"""The managed registry: spec, its stack and config, its login and the nodes' trust.

Nodes are the `docker node inspect` output recorded on a real 3-node lab
(tests/unit/test_lab_swarm.py); Docker itself is replaced by small fakes that
answer the calls the code makes.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import stat
import subprocess
from pathlib import Path

import docker.errors
import pytest
import yaml

from pretix_cluster import managed_registry, swarm, tls
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.images.build import ImageSet
from pretix_cluster.lab import deploy as lab_deploy
from pretix_cluster.lab.control import LabStatus
from pretix_cluster.lab.registry import Registry
from pretix_cluster.render import placement
from pretix_cluster.render import registry as render
from pretix_cluster.render.registry import RegistryAddress
from pretix_cluster.render.stack import dump_stack
from pretix_cluster.secrets import SECRET_NAMES
from pretix_cluster.spec import parse_spec
from pretix_cluster.tls import LocalCA
from tests.unit.test_lab_swarm import RECORDED

PASSWORD = "pw-8c1f0e2b9d"
ADDRESS = RegistryAddress("172.30.0.11", 5443)


def managed_spec(**images):
    return parse_spec(
        {"cluster": {"name": "shop"}, "images": {"registry": "managed"} | images},
    )


# --- spec ------------------------------------------------------------------------------------


def test_managed_is_a_registry_of_its_own_with_a_port():
    spec = managed_spec()
    assert spec.images.managed and spec.images.registry_port == 5443
    assert not parse_spec({"images": {"registry": "registry.example.org:5000"}}).images.managed


def test_the_registry_port_cannot_be_the_shops():
    with pytest.raises(UserError, match=r"registry's port 8080 is the shop's.*registry_port"):
        managed_spec(registry_port=8080)
    # An operator's registry has no port of ours: no clash to refuse.
    assert parse_spec({"images": {"registry_port": 8080}}).images.registry_port == 8080


def test_the_registry_password_is_generated_like_every_secret():
    assert "registry_password" in SECRET_NAMES


# --- rendering ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> LocalCA:
    return LocalCA.ensure(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def files(ca):
    pair = ca.issue([ADDRESS.host, "lab-1"])
    return render.registry_files(pair.cert_pem, pair.key_pem, PASSWORD)


def test_key_and_password_are_secrets_certificate_and_config_are_configs(files):
    kinds = {f.name: f.secret for f in files.values()}
    assert kinds == {
        render.CONFIG_FILE: False,
        render.CERT_FILE: False,
        render.KEY_FILE: True,
        render.PASSWORD_FILE: True,
    }


def test_the_config_names_the_files_where_the_stack_mounts_them(files):
    config = yaml.safe_load(files[render.CONFIG_FILE].content)
    stack = render.registry_stack(managed_spec(), "pretix-cluster/docker-registry:abc", files)
    service = stack["services"]["registry"]
    mounted = {c["target"] for c in service["configs"]}
    mounted |= {f"/run/secrets/{s['target']}" for s in service["secrets"]}
    assert config["http"]["tls"]["certificate"] in mounted
    assert config["http"]["tls"]["key"] in mounted
    assert f"{render.CONFIG_DIR}/{render.CONFIG_FILE}" in mounted  # the config itself
    assert service["command"][0] == f"{render.CONFIG_DIR}/{render.CONFIG_FILE}"
    # The image's registry-serve makes the htpasswd file the config names, from this secret.
    assert config["auth"]["htpasswd"]["path"] == render.HTPASSWD_PATH
    assert f"/run/secrets/{render.PASSWORD_FILE}" in mounted
    assert config["http"]["addr"] == f":{render.CONTAINER_PORT}"


def test_the_registry_runs_once_on_its_labelled_node_with_a_host_mode_port(files):
    spec = managed_spec(registry_port=5999)
    stack = render.registry_stack(spec, "pretix-cluster/docker-registry:abc", files)
    service = stack["services"]["registry"]
    assert service["deploy"]["replicas"] == 1
    assert service["deploy"]["placement"]["constraints"] == [
        "node.labels.pretix-cluster.shop-registry.registry == true"
    ]
    assert service["ports"] == [
        {"target": render.CONTAINER_PORT, "published": 5999, "protocol": "tcp", "mode": "host"}
    ]
    assert service["volumes"] == [f"data:{render.DATA_DIR}"]
    assert all(s["uid"] == render.REGISTRY_UID for s in service["secrets"])


def test_the_registry_label_survives_the_clusters_placement():
    # apply_placement replaces every label under the cluster's prefix: the registry's
    # label must not be one of them, or each `up` would move the registry off its data.
    spec = managed_spec()
    assert not render.node_label(spec).startswith(placement.member_label(spec.stack, ""))


def test_the_stack_file_names_secrets_and_holds_no_secret_value(files):
    text = dump_stack(render.registry_stack(managed_spec(), "img:1", files))
    assert PASSWORD not in text
    assert "PRIVATE KEY" not in text
    assert files[render.PASSWORD_FILE].object_name("shop-registry") in text


# --- login and trust -----------------------------------------------------------------------------


def test_the_sdk_login_is_the_htpasswd_user_and_the_password():
    assert render.auth_config(PASSWORD) == {"username": render.USER, "password": PASSWORD}


def test_the_cli_config_holds_the_login_for_the_registry_only():
    config = json.loads(render.docker_cli_config(ADDRESS, PASSWORD))
    assert list(config["auths"]) == ["172.30.0.11:5443"]
    decoded = base64.b64decode(config["auths"]["172.30.0.11:5443"]["auth"]).decode()
    assert decoded == f"{render.USER}:{PASSWORD}"


def test_the_trust_command_is_one_line_that_stores_the_ca_for_the_registry(ca, tmp_path):
    command = render.trust_command(ADDRESS, ca.pair.cert_pem)
    assert "\n" not in command
    assert f"{render.CERTS_D}/172.30.0.11:5443/ca.crt" in command
    # Run it for real, with certs.d moved into a temporary folder.
    local = command.replace(render.CERTS_D, str(tmp_path / "certs.d"))
    subprocess.run(["sh", "-c", local], check=True)
    assert (tmp_path / "certs.d" / "172.30.0.11:5443" / "ca.crt").read_bytes() == ca.pair.cert_pem


def test_deploy_hands_the_login_over_in_a_private_docker_config_only(monkeypatch):
    seen = {}

    def fake_run(command, input, env, **kwargs):
        folder = Path(env["DOCKER_CONFIG"])
        seen.update(
            command=command,
            stack_file=input,
            env=env,
            folder_mode=stat.S_IMODE(folder.stat().st_mode),
            file_mode=stat.S_IMODE((folder / "config.json").stat().st_mode),
            config=(folder / "config.json").read_text(),
            folder=folder,
        )
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(swarm.subprocess, "run", fake_run)
    login = render.docker_cli_config(ADDRESS, PASSWORD)
    swarm.deploy("shop", "version: '3.8'\n", registry_login=login)
    assert "--with-registry-auth" in seen["command"]
    assert seen["folder_mode"] == 0o700 and seen["file_mode"] == 0o600
    assert seen["config"] == login
    assert not seen["folder"].exists()  # deleted after the command
    encoded = json.loads(login)["auths"][str(ADDRESS)]["auth"]
    for value in (PASSWORD, encoded):
        assert value not in " ".join(seen["command"]) + seen["stack_file"]
        assert all(value not in v for v in seen["env"].values())


def test_deploy_without_a_login_changes_nothing(monkeypatch):
    seen = {}

    def fake_run(command, env, **kwargs):
        seen.update(command=command, env=env)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(swarm.subprocess, "run", fake_run)
    swarm.deploy("shop", "version: '3.8'\n")
    assert "--with-registry-auth" not in seen["command"] and seen["env"] is None


# --- the registry's certificate ------------------------------------------------------------------


def test_the_certificate_is_kept_and_reissued_only_for_other_hosts(tmp_path):
    ca = LocalCA.ensure(tmp_path / "tls")
    first = managed_registry.server_pair(ca, ["172.30.0.11", "lab-1"])
    assert tls.certificate_hosts(first) == {"172.30.0.11", "lab-1"}
    assert stat.S_IMODE(os.stat(ca.directory / managed_registry.KEY_FILE).st_mode) == 0o600
    assert managed_registry.server_pair(ca, ["172.30.0.11", "lab-1"]) == first
    moved = managed_registry.server_pair(ca, ["172.30.0.12", "lab-2"])
    assert moved != first and tls.certificate_hosts(moved) == {"172.30.0.12", "lab-2"}


# --- nodes ---------------------------------------------------------------------------------


class FakeNodeDocker:
    """A node's daemon: `images.pull` fails with ``error`` (an APIError text) or succeeds."""

    def __init__(self, error: str | None = None):
        self.error, self.pulled = error, []
        self.images = self

    def pull(self, repository, tag, auth_config):
        if self.error:
            raise docker.errors.APIError("pull", explanation=self.error)
        self.pulled.append((repository, tag, auth_config))


def registry_on_lab_1(tmp_path) -> managed_registry.ManagedRegistry:
    node = placement.Node.from_inspect(RECORDED["healthy"][0])
    ca = LocalCA.ensure(tmp_path / "tls")
    return managed_registry.ManagedRegistry(
        ADDRESS, node, ca, PASSWORD, "pretix-cluster/docker-registry:abc"
    )


def fake_swarm(monkeypatch, dockers: dict[str, FakeNodeDocker | Exception]):
    nodes = [placement.Node.from_inspect(n) for n in RECORDED["healthy"]]
    by_id = {n.id: dockers[n.hostname] for n in nodes}

    def node_client(client, node_id):
        found = by_id[node_id]
        if isinstance(found, Exception):
            raise found
        return found

    monkeypatch.setattr(swarm, "nodes", lambda client: nodes)
    monkeypatch.setattr(swarm, "node_client", node_client)


def test_every_node_pulls_the_probe_with_the_login(monkeypatch, tmp_path):
    dockers = {f"lab-{i}": FakeNodeDocker() for i in (1, 2, 3)}
    fake_swarm(monkeypatch, dockers)
    managed_registry.check_nodes_pull(None, registry_on_lab_1(tmp_path), lambda line: None)
    for node_docker in dockers.values():
        assert node_docker.pulled == [
            ("172.30.0.11:5443/pretix-cluster/docker-registry", "abc", render.auth_config(PASSWORD))
        ]


def test_a_node_that_does_not_trust_the_registry_gets_the_command(monkeypatch, tmp_path):
    untrusted = "Get https://172.30.0.11:5443/v2/: x509: certificate signed by unknown authority"
    fake_swarm(
        monkeypatch,
        {"lab-1": FakeNodeDocker(), "lab-2": FakeNodeDocker(untrusted), "lab-3": FakeNodeDocker()},
    )
    registry = registry_on_lab_1(tmp_path)
    with pytest.raises(UserError) as raised:
        managed_registry.check_nodes_pull(None, registry, lambda line: None)
    message = str(raised.value)
    assert message.startswith("lab-2 cannot pull") and message.endswith(registry.trust_command)
    assert PASSWORD not in message


def test_a_node_whose_docker_is_out_of_reach_is_skipped(monkeypatch, tmp_path):
    lines = []
    fake_swarm(
        monkeypatch,
        {
            "lab-1": FakeNodeDocker(),
            "lab-2": UserError("no way to reach it"),
            "lab-3": FakeNodeDocker(),
        },
    )
    managed_registry.check_nodes_pull(None, registry_on_lab_1(tmp_path), lines.append)
    assert any("cannot reach lab-2" in line for line in lines)


def test_a_push_this_machine_cannot_verify_names_the_command(monkeypatch, tmp_path):
    def untrusted_push(*args, **kwargs):
        raise UserError("Pushing x failed (x509: certificate signed by unknown authority); ...")

    monkeypatch.setattr(managed_registry, "push_image", untrusted_push)
    registry = registry_on_lab_1(tmp_path)
    cluster = Cluster(managed_spec(), tmp_path)
    cluster.__dict__["builder"] = object()
    with pytest.raises(UserError, match="This machine's Docker does not trust") as raised:
        managed_registry.push(cluster, registry, ImageSet({"web": "a:1"}), lambda line: None)
    assert str(raised.value).endswith(registry.trust_command)


def test_pushes_carry_the_login_and_return_the_names_nodes_pull(monkeypatch, tmp_path):
    pushed = []

    def push_image(builder, image, registry, via, progress, auth_config):
        pushed.append((image, registry, via, auth_config))
        return f"{registry}/{image}"

    monkeypatch.setattr(managed_registry, "push_image", push_image)
    registry = registry_on_lab_1(tmp_path)
    cluster = Cluster(managed_spec(), tmp_path)
    cluster.__dict__["builder"] = object()
    images = ImageSet({"web": "pretix-cluster/pretix:1"})
    pulled = managed_registry.push(cluster, registry, images, lambda line: None)
    assert pulled["web"] == "172.30.0.11:5443/pretix-cluster/pretix:1"
    assert [p[0] for p in pushed] == [registry.image, "pretix-cluster/pretix:1"]
    assert all(p[3] == render.auth_config(PASSWORD) for p in pushed)


def test_a_single_node_swarm_is_refused_in_one_sentence():
    one = [placement.Node.from_inspect(RECORDED["healthy"][0])]
    with pytest.raises(UserError, match=r'single-node swarm .* remove \[images\] registry = "man'):
        managed_registry.refuse_single_node(one)
    managed_registry.refuse_single_node([*one, placement.Node.from_inspect(RECORDED["healthy"][1])])


class FakeManager:
    """The manager's client as `registry trust` uses it: node list and its own node id."""

    def __init__(self, node_attrs: list[dict], own: str):
        self._nodes, self._own = node_attrs, own
        self.nodes = self

    def list(self):
        return [type("N", (), {"attrs": a, "id": a["ID"]})() for a in self._nodes]

    def info(self):
        return {"Swarm": {"NodeID": self._own}}


def test_registry_trust_names_the_managers_address_and_lists_the_nodes(tmp_path):
    cluster = Cluster(managed_spec(), tmp_path)
    manager = RECORDED["healthy"][1]  # the tool talks to lab-2
    cluster.__dict__["client"] = FakeManager(RECORDED["healthy"], own=manager["ID"])
    trust = managed_registry.trust(cluster)
    assert trust.registry == "172.30.0.12:5443"
    assert trust.command == render.trust_command(
        RegistryAddress("172.30.0.12", 5443), Path(trust.ca_file).read_bytes()
    )
    assert [n["hostname"] for n in trust.nodes] == ["lab-1", "lab-2", "lab-3"]


def test_registry_trust_follows_the_node_that_holds_the_data(tmp_path):
    cluster = Cluster(managed_spec(), tmp_path)
    nodes = copy.deepcopy(RECORDED["healthy"])
    nodes[2]["Spec"]["Labels"] = {render.node_label(cluster.spec): "true"}
    cluster.__dict__["client"] = FakeManager(nodes, own=nodes[0]["ID"])
    assert managed_registry.trust(cluster).registry == "172.30.0.13:5443"


def test_registry_trust_without_a_managed_registry_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match='not "managed"'):
        managed_registry.trust(Cluster(parse_spec({}), tmp_path))


# --- the lab -------------------------------------------------------------------------------------


def test_the_lab_keeps_a_managed_registry_and_fills_in_its_own_otherwise(tmp_path):
    lab = LabStatus("lab", "172.30.0.0/24", Registry("172.30.0.2:5000", "127.0.0.1:32768"))
    assert lab_deploy.lab_spec(managed_spec(), lab, tmp_path).images.registry == "managed"
    plain = lab_deploy.lab_spec(parse_spec({}), lab, tmp_path)
    assert plain.images.registry == "172.30.0.2:5000"


def test_a_registry_that_does_not_answer_is_one_sentence(ca):
    closed = RegistryAddress("127.0.0.1", 9)  # discard: nothing listens there
    with pytest.raises(UserError, match=r"does not answer at https://127.0.0.1:9/v2/ .*run `up`"):
        managed_registry.wait_answering(closed, ca.cert_path, "shop-registry", timeout=0.5)
