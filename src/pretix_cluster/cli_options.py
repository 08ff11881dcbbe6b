"""Options every command line shares, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pretix_cluster.spec import DEFAULT_SPEC_FILE

# A missing file means the defaults, for every command (spec.load_spec decides it).
SpecOption = Annotated[
    Path,
    typer.Option(
        "--spec",
        "-f",
        help="the cluster spec; a missing file means the defaults",
        envvar="PRETIX_CLUSTER_SPEC",
    ),
]
DEFAULT_SPEC = Path(DEFAULT_SPEC_FILE)
