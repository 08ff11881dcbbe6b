"""Operator mistakes end in one sentence and exit code 2, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

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
