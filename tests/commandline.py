"""The real command line, run as an operator would: shared by the integration and lab tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(
    *args: str,
    spec_file: Path | None = None,
    check: bool = True,
    timeout: float = 3000,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    """Run the real command line, as an operator would."""
    command = [sys.executable, "-m", "pretix_cluster", *args]
    if spec_file is not None:
        command += ["--spec", str(spec_file)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or os.environ.copy(),
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result
