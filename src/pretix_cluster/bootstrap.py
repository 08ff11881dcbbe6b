"""`up`: from a spec to a running, migrated cluster with a demo shop.

Every step converges instead of creating, so `up` can be re-run at any point,
including after a failed or interrupted run, and never duplicates anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pretix_cluster import managed_registry, swarm
from pretix_cluster.cluster import API_TOKEN_FILE, Cluster
from pretix_cluster.daemons import etcd, patroni
from pretix_cluster.errors import UserError
from pretix_cluster.images import build, registry
from pretix_cluster.render.stack import dump_stack
from pretix_cluster.shop_setup import ShopSetupError, ShopSetupParams, run_shop_setup
from pretix_cluster.spec import PORTS

Progress = Callable[[str], None]

DATA_TIER_TIMEOUT = 900
MIGRATE_TIMEOUT = 1200
APP_TIER_TIMEOUT = 600


@dataclass(frozen=True)
class UpResult:
    url: str
    seconds: float
    admin_password_file: str
    api_token_file: str
    # The local CA that issued the shop's certificate, for the operator to trust (else None).
    local_ca_file: str | None
    # The managed registry's one line for each node (also `registry trust`); None without one.
    registry_trust: str | None = None


def up(cluster: Cluster, progress: Progress) -> UpResult:
    started = time.monotonic()
    spec = cluster.spec
    # The operator's certificate and key are checked before Docker is touched at all.
    edge = cluster.edge_pair
    client = cluster.client
    swarm.ensure_swarm(client, progress)
    swarm.refuse_foreign_stack(client, cluster.stack)
    swarm.refuse_taken_port(client, cluster.stack, spec.nginx.port)
    if spec.tls_enabled:
        swarm.refuse_taken_port(client, cluster.stack, spec.nginx.http_port, "[nginx] http_port")
    # Before anything is built or deployed: a spec the swarm cannot hold is refused here.
    nodes = swarm.nodes(client)
    placement = cluster.topology.placement(spec, nodes)
    if len(nodes) > 1 and not spec.images.registry:
        raise UserError(
            f"This swarm has {len(nodes)} nodes, which cannot pull images built here; "
            "set [images] registry in cluster.toml to a registry every node can pull from, or "
            'to "managed" (the tool runs one).'
        )
    managed = None
    if spec.images.managed:
        managed_registry.refuse_single_node(nodes)
        managed = managed_registry.ensure(cluster, progress)
    elif spec.images.registry:
        registry.check_answers(cluster.push_via or spec.images.registry)
    swarm.refuse_foreign_data(
        client, cluster.stack, cluster.data_fingerprint(), str(cluster.secrets.directory)
    )

    images = build.build_all(cluster.builder, spec.images.base, cluster.ca_bundle(), progress)
    if managed is not None:
        images = managed_registry.push(cluster, managed, images, progress)
        managed_registry.check_nodes_pull(client, managed, progress)
    elif spec.images.registry:
        images = registry.push(
            cluster.builder, images, spec.images.registry, progress, cluster.push_via
        )
    files = cluster.files()
    swarm.ensure_files(client, cluster.stack, files)
    if placement is not None:
        swarm.apply_placement(client, cluster.stack, placement, progress)
    stack_doc = cluster.stack_document(images, files)
    swarm.remove_services_changing_mode(client, cluster.stack, stack_doc, progress)
    progress(f"deploying stack {cluster.stack}")
    swarm.deploy(
        cluster.stack,
        dump_stack(stack_doc),
        registry_login=managed.docker_cli_config if managed is not None else None,
    )

    swarm.wait_converged(
        client, cluster.stack, DATA_TIER_TIMEOUT, progress, names=cluster.data_tier()
    )
    if cluster.topology.uses_patroni:
        enable_etcd_auth(cluster, progress)
        patroni.apply_dynamic_settings(
            spec.postgres.dcs_settings(), _postgres_shells(cluster), progress
        )
    migrate(cluster, progress)
    swarm.wait_converged(client, cluster.stack, APP_TIER_TIMEOUT, progress)
    setup_demo_shop(cluster, progress)
    swarm.prune_files(client, cluster.stack, {f.object_name(cluster.stack) for f in files.values()})
    return UpResult(
        url=cluster.shop_info()["shop_url"],
        seconds=time.monotonic() - started,
        admin_password_file=str(cluster.secrets.path("pretix_admin_password")),
        api_token_file=str(cluster.secrets.path(API_TOKEN_FILE)),
        local_ca_file=_local_ca_file(cluster) if edge is not None else None,
        registry_trust=managed.trust_command if managed is not None else None,
    )


def _local_ca_file(cluster: Cluster) -> str | None:
    """The CA file clients must trust when the tool issued the certificate itself."""
    return None if cluster.spec.tls.certificate else cluster.shop_trust().ca_file


def _postgres_shells(cluster: Cluster) -> Iterator[patroni.Shell]:
    """Each running PostgreSQL container's shell as the postgres user, looked up lazily."""
    for node in cluster.spec.pg_nodes:
        for container in swarm.running_containers(cluster.client, cluster.stack, node):
            yield lambda command, c=container: swarm.exec_in(
                c, command, timeout=60, user=patroni.POSTGRES_USER
            )


def enable_etcd_auth(cluster: Cluster, progress: Progress) -> None:
    """Turn on etcd's client authentication once its members form a cluster; a no-op after.

    Run here, by `up` in one member's container, rather than by a member's
    entrypoint: it needs a cluster with quorum, which no single member's start
    can wait for without a helper process beside etcd, and any member can do it
    (an entrypoint would tie it to one member that may be down or placed
    elsewhere). Passwords go on stdin (swarm.exec_in), never on a command line.
    """
    port = PORTS.etcd_client
    container = next(
        (
            c
            for m in cluster.spec.etcd_members
            for c in swarm.running_containers(cluster.client, cluster.stack, m)
        ),
        None,
    )
    if container is None:
        raise UserError(f"No etcd member of {cluster.stack} is running; run `up` again.")
    _, output = swarm.exec_in(container, etcd.auth_probe_command(port), timeout=30)
    if etcd.auth_enabled(output):
        return
    progress("turning on etcd's client authentication")
    for step in etcd.auth_setup_steps(port, patroni.PATRONI_NAMESPACE):
        stdin = cluster.secrets.get(step.password) + "\n" if step.password else None
        code, output = swarm.exec_in(container, list(step.command), stdin, timeout=30)
        if not step.succeeded(code, output):
            last = output.strip().splitlines()[-1:] or ["no output"]
            raise UserError(
                f"Turning on etcd's authentication failed at `{' '.join(step.command[2:])}` "
                f"({last[0]}); run `up` again."
            )


def migrate(cluster: Cluster, progress: Progress) -> None:
    """Once per deploy, as a Swarm job shaped like the web service; a no-op when current."""
    progress("running database migrations")
    if cluster.spec.images.managed:
        # The job is a service the SDK creates: it sends the login the client holds.
        managed_registry.login(cluster)
    swarm.run_job(
        cluster.client, cluster.stack, "migrate", "web", ["migrate"], MIGRATE_TIMEOUT, progress
    )


def setup_demo_shop(cluster: Cluster, progress: Progress) -> None:
    """Organizer, live event, limited quota, manual payment, API token; changes nothing twice."""
    progress("setting up the demo shop")
    spec = cluster.spec
    params = ShopSetupParams(
        admin_password=cluster.secrets.get("pretix_admin_password"),
        quota_size=spec.shop.quota,
        organizer_slug=spec.shop.organizer,
        event_slug=spec.shop.event,
        currency=spec.shop.currency,
    )
    containers = swarm.running_containers(cluster.client, cluster.stack, "web")
    if not containers:
        raise UserError(f"No web container of {cluster.stack} is running; run `up` again.")
    try:
        result = run_shop_setup(containers[0], params)
    except ShopSetupError as exc:
        raise UserError(f"Setting up the demo shop failed ({exc}); run `up` again.") from None
    cluster.secrets.write(API_TOKEN_FILE, result.api_token)
    cluster.write_shop_info(
        {
            "organizer": result.organizer,
            "event": result.event,
            "item_id": result.item_id,
            "quota_id": result.quota_id,
            "quota_size": spec.shop.quota,
            "shop_url": f"{spec.cluster.url}/{result.organizer}/{result.event}/",
        }
    )
