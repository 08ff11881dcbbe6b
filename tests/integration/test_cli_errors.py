"""Operator mistakes end in one sentence and exit code 2, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from pretix_cluster.tls import LocalCA
from tests.unit.test_tls import expired_pair

from .conftest import cli

pytestmark = pytest.mark.integration


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


def test_malformed_spec(tmp_path):
    assert_user_error(cli("up", spec_file=write(tmp_path, "[web\n"), check=False), "not valid TOML")


def test_impossible_spec(tmp_path):
    spec = write(tmp_path, "[etcd]\nmembers = 4\n[web]\nreplicas = 0\n")
    assert_user_error(cli("render", spec_file=spec, check=False), "etcd.members", "web.replicas")


def test_docker_not_reachable(tmp_path):
    env = os.environ | {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    result = cli("status", spec_file=write(tmp_path, ""), check=False, env=env)
    assert_user_error(result, "Docker is not reachable")


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        spec = write(tmp_path, f'[cluster]\nname = "pcport"\n[nginx]\nport = {port}\n')
        result = cli("up", spec_file=spec, check=False)
    assert_user_error(result, f"Port {port} is in use")


def test_a_foreign_stack_of_the_same_name_is_not_touched(tmp_path):
    stack = tmp_path / "foreign.yml"
    stack.write_text(
        "version: '3.8'\nservices:\n  app:\n    image: debian:bookworm-slim\n"
        "    command: ['sleep', '600']\n"
    )
    subprocess.run(
        ["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(stack), "pcforeign"],
        check=True,
        capture_output=True,
    )
    try:
        spec = write(tmp_path, '[cluster]\nname = "pcforeign"\n[nginx]\nport = 18499\n')
        assert_user_error(cli("up", spec_file=spec, check=False), "not made by pretix-cluster")
        services = subprocess.run(
            ["docker", "stack", "services", "-q", "pcforeign"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert len(services) == 1
    finally:
        subprocess.run(["docker", "stack", "rm", "pcforeign"], capture_output=True, check=False)


def tls_spec(tmp_path: Path, **tls: str) -> Path:
    lines = "".join(f'{key} = "{value}"\n' for key, value in tls.items())
    return write(
        tmp_path,
        '[cluster]\nname = "pctls"\nurl = "https://127.0.0.1:18498"\n'
        f"[nginx]\nport = 18498\nhttp_port = 18497\n[tls]\n{lines}",
    )


def operator_files(tmp_path: Path, expired: bool = False) -> tuple[Path, Path, Path]:
    """A certificate, a key of another certificate, and the CA that issued both."""
    ca = LocalCA.ensure(tmp_path / "ca")
    pair = expired_pair() if expired else ca.issue(["127.0.0.1"])
    cert, key, other_key = tmp_path / "shop.pem", tmp_path / "shop.key", tmp_path / "other.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    other_key.write_bytes(ca.issue(["127.0.0.1"]).key_pem)
    return cert, key, other_key


def assert_nothing_deployed(stack: str) -> None:
    services = subprocess.run(
        ["docker", "stack", "services", "-q", stack], capture_output=True, text=True, check=False
    ).stdout.split()
    assert services == []


def test_a_certificate_that_does_not_match_its_key_deploys_nothing(tmp_path):
    cert, _, other_key = operator_files(tmp_path)
    spec = tls_spec(tmp_path, certificate=str(cert), key=str(other_key))
    assert_user_error(cli("up", spec_file=spec, check=False), "does not belong to the certificate")
    assert_nothing_deployed("pctls")


def test_an_expired_certificate_deploys_nothing(tmp_path):
    cert, key, _ = operator_files(tmp_path, expired=True)
    spec = tls_spec(tmp_path, certificate=str(cert), key=str(key))
    assert_user_error(cli("up", spec_file=spec, check=False), "expired on")
    assert_nothing_deployed("pctls")


def test_a_ca_file_that_does_not_exist_deploys_nothing(tmp_path):
    operator_files(tmp_path)  # relative to the spec file, as an operator writes them
    spec = tls_spec(tmp_path, certificate="shop.pem", key="shop.key", ca_file="no-ca.pem")
    assert_user_error(cli("up", spec_file=spec, check=False), "no-ca.pem does not exist")
    assert_nothing_deployed("pctls")
