"""The `pretix-cluster` command line: thin wrappers around the modules that do the work."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pretix_cluster import bootstrap, managed_registry, swarm
from pretix_cluster import nodes as nodes_module
from pretix_cluster import status as status_module
from pretix_cluster.bench import cli as bench_cli
from pretix_cluster.chaos import cli as chaos_cli
from pretix_cluster.cli_options import DEFAULT_SPEC, SpecOption
from pretix_cluster.cluster import Cluster
from pretix_cluster.errors import UserError
from pretix_cluster.images import build as image_build
from pretix_cluster.lab import cli as lab_cli
from pretix_cluster.loadtest import cli as loadtest_cli
from pretix_cluster.progress import progress_display
from pretix_cluster.spec import ClusterSpec, parse_spec, spec_toml

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Run pretix as a highly available cluster on Docker Swarm.",
)
console = Console(stderr=True, log_path=False, soft_wrap=True)
out = Console(soft_wrap=True)

app.add_typer(loadtest_cli.app, name="loadtest")
app.add_typer(chaos_cli.app, name="chaos")
app.add_typer(bench_cli.app, name="bench")
app.add_typer(lab_cli.app, name="lab")

JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def main() -> None:
    """Entry point: user errors become one sentence and exit code 2, never a traceback."""
    try:
        app()
    except UserError as exc:
        # escape: a message naming a TOML section ("[ports]") is not rich markup.
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(UserError.exit_code)
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to continue.")
        sys.exit(130)


@app.command()
def init(
    spec_file: SpecOption = DEFAULT_SPEC,
    name: Annotated[str | None, typer.Option(help="stack name")] = None,
    port: Annotated[int | None, typer.Option(help="published shop port")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Write a commented default cluster spec."""
    if spec_file.exists() and not force:
        raise UserError(f"{spec_file} exists; edit it, or pass --force to overwrite it.")
    raw = ClusterSpec().model_dump()
    if name:
        raw["cluster"]["name"] = name
    if port:
        raw["nginx"]["port"] = port
        raw["cluster"]["url"] = f"https://127.0.0.1:{port}"
    spec_file.write_text(spec_toml(parse_spec(raw, origin="options")))
    console.print(f"wrote {spec_file}")


@app.command()
def build(
    spec_file: SpecOption = DEFAULT_SPEC,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle for downloads in builds")] = None,
    force: Annotated[bool, typer.Option(help="rebuild even when up to date")] = False,
) -> None:
    """Build every image (pinned Debian packages and PyPI versions); seconds when unchanged."""
    cluster = Cluster.from_file(spec_file, ca_file)
    with progress_display("building images", console) as progress:
        images = image_build.build_all(
            cluster.client,
            cluster.spec.images.base,
            cluster.ca_bundle(),
            progress,
            only_missing=not force,
        )
    for component, tag in images.tags.items():
        out.print(f"{component:10} {tag}")


@app.command()
def render(
    spec_file: SpecOption = DEFAULT_SPEC,
    create_secrets: Annotated[
        bool, typer.Option(help="also create the Docker secrets and configs it refers to")
    ] = False,
) -> None:
    """Print the Swarm stack file, for `docker stack deploy -c - NAME` by hand."""
    cluster = Cluster.from_file(spec_file)
    files = cluster.files()
    if create_secrets:
        swarm.ensure_files(cluster.client, cluster.stack, files)
    # Raw, not through rich: YAML must not be wrapped or highlighted.
    sys.stdout.write(cluster.stack_yaml(cluster.images(), files))


@app.command()
def up(
    spec_file: SpecOption = DEFAULT_SPEC,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle for downloads in builds")] = None,
) -> None:
    """Build what is missing, deploy, migrate, wait until healthy, set up the demo shop."""
    cluster = Cluster.from_file(spec_file, ca_file)
    with progress_display(f"bringing up {cluster.stack}", console) as progress:
        result = bootstrap.up(cluster, progress)
    out.print(f"[bold green]pretix is up[/] at {result.url}  ({result.seconds:.0f} s)")
    out.print(f"admin: admin@localhost, password in {result.admin_password_file}")
    out.print(f"API token in {result.api_token_file}")
    if result.local_ca_file:
        out.print(f"certificate issued by the local CA {result.local_ca_file}: trust that file")
    if result.registry_trust is not None:
        out.print("every node trusts the managed registry once this ran there as root:")
        # Raw: the line must stay one line, unwrapped, to be copied.
        sys.stdout.write(result.registry_trust + "\n")


@app.command()
def migrate(spec_file: SpecOption = DEFAULT_SPEC) -> None:
    """Run pretix's database migrations once (after a by-hand `docker stack deploy`)."""
    cluster = Cluster.from_file(spec_file)
    with progress_display("migrating", console) as progress:
        bootstrap.migrate(cluster, progress)


@app.command()
def status(spec_file: SpecOption = DEFAULT_SPEC, as_json: JsonOption = False) -> None:
    """Replicas, Patroni members, Redis roles, HAProxy backends, waiting rooms, pretix health."""
    cluster = Cluster.from_file(spec_file)
    result = status_module.collect(cluster)
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        _print_status(result)
    raise typer.Exit(0 if result.healthy else 1)


def _print_status(result: status_module.Status) -> None:
    _table("services", ["name", "role", "running", "desired", "last_error"], result.services)
    _table("etcd", ["endpoint", "healthy"], result.etcd)
    _table("PostgreSQL (Patroni)", ["name", "role", "state", "lag", "timeline"], result.patroni)
    _table("Redis (Sentinel's view)", ["name", "role", "flags", "link"], result.redis)
    _table("HAProxy", ["haproxy", "backend", "server", "status"], result.haproxy)
    if result.rooms:
        columns = ["nginx", "places", "active", "waiting", "tickets", "admitted"]
        _table("waiting room (per entry node)", columns, result.waiting_room)
    out.print(f"pretix /healthcheck/: {result.healthcheck}")
    if result.healthy:
        out.print("[bold green]healthy[/]")
    for problem in result.problems:
        out.print(f"[bold red]degraded:[/] {problem}")


def _table(title: str, columns: list[str], rows: list[dict]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    out.print(table)


@app.command()
def down(
    spec_file: SpecOption = DEFAULT_SPEC,
    purge: Annotated[bool, typer.Option(help="also delete volumes, secrets and configs")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Stop the cluster and keep its data; --purge deletes the data too."""
    cluster = Cluster.from_file(spec_file)
    if purge and not yes:
        typer.confirm(f"Delete every volume and secret of '{cluster.stack}' for good?", abort=True)
    with progress_display(f"removing {cluster.stack}", console) as progress:
        swarm.remove_stack(cluster.client, cluster.stack, progress)
        if cluster.spec.images.managed:
            managed_registry.remove(cluster, purge, progress)
        if purge:
            swarm.purge_data(cluster.client, cluster.stack, progress)
            swarm.remove_placement_labels(cluster.client, cluster.stack, progress)
            # The passwords and the API token belong to the data that is gone.
            shutil.rmtree(cluster.secrets.directory, ignore_errors=True)
    out.print(f"{cluster.stack} is down" + (" and purged" if purge else "; data kept"))


registry_app = typer.Typer(no_args_is_help=True, help="The managed registry's trust.")
app.add_typer(registry_app, name="registry")


@registry_app.command("trust")
def registry_trust(spec_file: SpecOption = DEFAULT_SPEC, as_json: JsonOption = False) -> None:
    """The one line that makes a node's Docker trust the managed registry (run it as root on
    every node; no daemon restart), and the nodes."""
    trust = managed_registry.trust(Cluster.from_file(spec_file))
    if as_json:
        sys.stdout.write(json.dumps(dataclasses.asdict(trust), indent=2) + "\n")
        return
    out.print(f"managed registry {trust.registry} (CA {trust.ca_file}); run as root on every node:")
    sys.stdout.write(trust.command + "\n")
    out.print("nodes: " + ", ".join(f"{n['hostname']} ({n['address']})" for n in trust.nodes))


nodes_app = typer.Typer(no_args_is_help=True, help="The swarm's machines as the cluster uses them.")
app.add_typer(nodes_app, name="nodes")


@nodes_app.command("list")
def nodes_list(spec_file: SpecOption = DEFAULT_SPEC, as_json: JsonOption = False) -> None:
    """Every node: state, role, and the cluster's members and entry point on it."""
    cluster = Cluster.from_file(spec_file)
    found = nodes_module.list_nodes(cluster)
    rows = [
        {
            "hostname": n.hostname,
            "ready": n.ready,
            "role": n.role,
            "manager": n.manager_status,
            "availability": n.availability,
            "address": n.address,
            "entry": n.is_entry(cluster.stack),
            "members": n.members(cluster.stack),
        }
        for n in found
    ]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    _table("nodes", list(rows[0]) if rows else [], rows)


@nodes_app.command("remove")
def nodes_remove(
    node: Annotated[str, typer.Argument(help="hostname of a node that is down for good")],
    spec_file: SpecOption = DEFAULT_SPEC,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Remove a dead node from the swarm; its members are rebuilt on the other nodes."""
    cluster = Cluster.from_file(spec_file)
    if not yes:
        typer.confirm(f"Remove {node} from the swarm for good (its disk is given up)?", abort=True)
    with progress_display(f"removing node {node}") as progress:
        result = nodes_module.remove_node(cluster, node, progress)
    out.print(f"{node} removed; {cluster.stack} is up again at {result.url}")
