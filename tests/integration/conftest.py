"""One test cluster per session, under its own stack name and port.

It never touches an operator's cluster on the same machine: the name, port and
state folder are the test's own. Set PCTEST_KEEP=1 to leave it running after
the session (faster re-runs while developing).

Set PCTEST_SPEC=/path/to/cluster.toml to run the tests against an existing
cluster instead: the session neither brings it up nor takes it down. The tests
still act on it (they buy tickets, one runs `up` again, the load and chaos
tests load and disturb it), so pick the ones to run with -k.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pretix_cluster.cluster import Cluster
from pretix_cluster.spec import parse_spec, spec_toml
from tests.commandline import cli

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["cli"]
STATE = ROOT / ".state" / "pctest"
TEST_STACK = "pctest"
TEST_PORT = 18480
TEST_HTTP_PORT = 18490


EXISTING_SPEC = os.environ.get("PCTEST_SPEC")


@pytest.fixture(scope="session")
def spec_file() -> Path:
    if EXISTING_SPEC:
        return existing_spec_file(Path(EXISTING_SPEC))
    STATE.mkdir(parents=True, exist_ok=True)
    path = STATE / "cluster.toml"
    spec = parse_spec(
        {
            "cluster": {
                "name": TEST_STACK,
                # HTTPS with a certificate from the local CA in the state folder.
                "url": f"https://127.0.0.1:{TEST_PORT}",
                "state_dir": str(STATE / "state"),
            },
            "nginx": {"port": TEST_PORT, "http_port": TEST_HTTP_PORT},
        }
    )
    path.write_text(spec_toml(spec))
    return path


@pytest.fixture(scope="session")
def cluster(spec_file: Path) -> Cluster:
    """The running test cluster; `up` is idempotent, so a kept cluster is reused."""
    if EXISTING_SPEC:
        yield Cluster.from_file(spec_file)
        return
    cli("up", spec_file=spec_file)
    yield Cluster.from_file(spec_file)
    if not os.environ.get("PCTEST_KEEP"):
        cli("down", "--purge", "--yes", spec_file=spec_file, check=False)


def existing_spec_file(path: Path) -> Path:
    # A missing file would silently mean the default spec, i.e. another cluster.
    if not path.is_file():
        pytest.exit(f"PCTEST_SPEC={path}: no such file", returncode=2)
    return path.resolve()
