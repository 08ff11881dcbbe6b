"""`pretix-cluster lab`: several Docker machines on this one, as a swarm of three managers.

Every other command reaches the lab through DOCKER_HOST (`eval $(pretix-cluster
lab env)`); the lab commands themselves always use this machine's daemon.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pretix_cluster.cli_options import DEFAULT_SPEC, SpecOption
from pretix_cluster.errors import UserError
from pretix_cluster.lab import control, deploy
from pretix_cluster.lab.names import DEFAULT_LAB
from pretix_cluster.progress import progress_display

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A multi-machine swarm on this machine: nested Docker daemons as lab nodes.",
)
console = Console(stderr=True, log_path=False, soft_wrap=True)
out = Console(soft_wrap=True)

NameOption = Annotated[
    str, typer.Option("--name", help="the lab's name (prefix of its nodes)", envvar="PRETIX_LAB")
]
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]
NodeArgument = Annotated[str, typer.Argument(help="a node, as lab-2 or 2")]


def _progress(title: str):
    return progress_display(title, console)


@app.command()
def up(
    nodes: Annotated[
        int, typer.Option(help="lab nodes: 3 or more (all managers up to an odd count), or 1")
    ] = 3,
    name: NameOption = DEFAULT_LAB,
    subnet: Annotated[
        str | None, typer.Option(help="the lab bridge's subnet (default: a free 172.30.x.0/24)")
    ] = None,
    shared_dir: Annotated[
        Path | None, typer.Option(help="a host directory every node sees (shared media)")
    ] = None,
    cluster: Annotated[
        bool, typer.Option(help="also deploy the cluster of --spec across the lab's nodes")
    ] = True,
    spec_file: SpecOption = DEFAULT_SPEC,
    as_json: JsonOption = False,
) -> None:
    """Create the lab (or continue and repair it), then deploy the cluster across it."""
    if cluster and shared_dir is None:
        shared_dir = deploy.shared_dir(spec_file)
        shared_dir.mkdir(parents=True, exist_ok=True)
    spec = control.LabSpec(name=name, nodes=nodes, subnet=subnet, shared_dir=shared_dir)
    started = time.monotonic()
    with _progress(f"bringing up lab {name}") as progress:
        lab = control.up(spec, progress)
        lab_up_s = time.monotonic() - started
        deployed = deploy.deploy(lab, spec_file, progress) if cluster else None
    if as_json:
        _print_json(lab)
        return
    _print_lab(lab)
    out.print(f"[bold green]lab {lab.name} is up[/] ({lab_up_s:.0f} s)")
    if deployed is not None:
        out.print(
            f"[bold green]pretix is up across the lab[/] at {deployed.url} "
            f"({time.monotonic() - started:.0f} s in all)"
        )
    out.print(f"export DOCKER_HOST={lab.docker_host}")
    if deployed is not None:
        out.print(f"export PRETIX_CLUSTER_SPEC={deployed.spec_file}")


@app.command()
def status(name: NameOption = DEFAULT_LAB, as_json: JsonOption = False) -> None:
    """Nodes, their containers, and the swarm's view of them; exit 1 unless all are Ready."""
    lab = control.status(name)
    if as_json:
        _print_json(lab)
    else:
        _print_lab(lab)
    raise typer.Exit(0 if lab.healthy else 1)


@app.command()
def env(name: NameOption = DEFAULT_LAB, spec_file: SpecOption = DEFAULT_SPEC) -> None:
    """Print the exports that point every other command at the lab:
    `eval $(pretix-cluster lab env)`: DOCKER_HOST (a ready manager) and, once the cluster
    is deployed, PRETIX_CLUSTER_SPEC (the lab's spec)."""
    lab = control.status(name)
    if lab.docker_host is None:
        raise UserError(f"No manager of lab {name} is ready; run `pretix-cluster lab up`.")
    sys.stdout.write(f"export DOCKER_HOST={lab.docker_host}\n")
    lab_spec_file = deploy.shared_dir(spec_file).parent / deploy.LAB_SPEC_FILE
    if lab_spec_file.exists():
        sys.stdout.write(f"export PRETIX_CLUSTER_SPEC={lab_spec_file}\n")


@app.command()
def kill(node: NodeArgument, name: NameOption = DEFAULT_LAB) -> None:
    """A machine dies: `docker kill` of the node, everything on it at once."""
    killed = control.kill_node(name, node)
    out.print(f"{killed} killed; `pretix-cluster lab status` shows when the swarm sees it Down")


@app.command()
def start(node: NodeArgument, name: NameOption = DEFAULT_LAB) -> None:
    """The machine comes back with its disk; waits until the swarm shows it Ready."""
    started = time.monotonic()
    with _progress(f"starting {node}") as progress:
        back = control.start_node(name, node, progress)
    out.print(
        f"{back.name} is Ready in the swarm again ({time.monotonic() - started:.0f} s, "
        f"{back.swarm.role})"
    )


@app.command()
def down(
    name: NameOption = DEFAULT_LAB,
    purge: Annotated[
        bool, typer.Option(help="also delete the nodes' disks and registry data")
    ] = False,
) -> None:
    """Remove the nodes, the registry and the network; keep their disks unless --purge."""
    with _progress(f"removing lab {name}") as progress:
        deploy.remove_front(name, progress)
        control.down(name, purge, progress)
    out.print(f"lab {name} is down" + (" and purged" if purge else "; disks kept"))


def _print_json(lab: control.LabStatus) -> None:
    # Raw, not through rich: JSON must not be wrapped.
    sys.stdout.write(json.dumps(lab.as_dict(), indent=2) + "\n")


def _print_lab(lab: control.LabStatus) -> None:
    table = Table(title=f"lab {lab.name} ({lab.subnet})", title_justify="left")
    for column in ("node", "container", "ip", "role", "state", "manager"):
        table.add_column(column)
    for node in lab.nodes:
        swarm = node.swarm
        table.add_row(
            node.name,
            node.container,
            node.ip,
            swarm.role if swarm else "-",
            f"{swarm.state}/{swarm.availability}" if swarm else "not in the swarm",
            "leader" if swarm and swarm.leader else (swarm.reachability if swarm else ""),
        )
    out.print(table)
    if lab.registry:
        out.print(
            f"registry: {lab.registry.address} (the host pushes via {lab.registry.host_address})"
        )
    else:
        out.print("registry: not running")
    out.print(f"DOCKER_HOST: {lab.docker_host or 'no ready manager'}")
