"""A lab with the cluster deployed across it: shared by the lab tests (each its own lab)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from pretix_cluster.spec import parse_spec, spec_toml
from tests.commandline import cli

HTTP_PORT_OFFSET = 10


def lab_command(name: str, *args: str, env: dict | None = None, check: bool = True):
    return cli("lab", *args, "--name", name, check=check, timeout=2400, env=env)


@contextlib.contextmanager
def deployed_lab(name: str, port: int, state: Path, sections: dict | None = None) -> Iterator[dict]:
    """`lab up --nodes 3` of a spec (stack and lab ``name``, the shop over HTTPS on ``port``,
    its redirect on ``port`` + 10, more ``sections``); yields the environment `lab env`
    gives; always `lab down --purge` (unless PCTEST_KEEP)."""
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    spec_file = state / "cluster.toml"
    spec = parse_spec(
        {
            "cluster": {
                "name": name,
                "url": f"https://127.0.0.1:{port}",
                "state_dir": str(state / "state"),
            },
            "nginx": {"port": port, "http_port": port + HTTP_PORT_OFFSET},
        }
        | (sections or {})
    )
    spec_file.write_text(spec_toml(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "PRETIX_CLUSTER_SPEC")}
    try:
        up = lab_command(name, "up", "--nodes", "3", "--spec", str(spec_file), env=env)
        print(up.stdout[-3000:])
        exports = lab_command(name, "env", "--spec", str(spec_file), env=env).stdout
        for line in exports.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        assert {"DOCKER_HOST", "PRETIX_CLUSTER_SPEC"} <= set(env), exports
        yield env
    finally:
        if not os.environ.get("PCTEST_KEEP"):
            lab_command(name, "down", "--purge", env=env, check=False)
            shutil.rmtree(state, ignore_errors=True)
