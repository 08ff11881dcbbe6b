"""Patroni's dynamic settings: the spec's values applied to a running cluster.

Patroni reads ``bootstrap.dcs`` from patroni.yml only when it creates the
cluster; afterwards ttl, loop_wait, retry_timeout and synchronous_mode live in
the DCS. Without this step a changed spec (or a tuned default) would silently
never reach a cluster created by an older version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pretix_cluster import swarm
from pretix_cluster.errors import UserError

if TYPE_CHECKING:
    from pretix_cluster.cluster import Cluster

PATRONI_CONFIG = "/run/secrets/patroni.yml"
POSTGRES_USER = "postgres"  # the secret is readable by this uid only

Progress = Callable[[str], None]


def edit_config_command(settings: dict[str, object]) -> list[str]:
    """patronictl changes the DCS through the leader's REST API, with the config's credentials."""
    command = ["patronictl", "-c", PATRONI_CONFIG, "edit-config", "--force", "--quiet"]
    for key, value in settings.items():
        rendered = str(value).lower() if isinstance(value, bool) else str(value)
        command += ["--set", f"{key}={rendered}"]
    return command


def apply_dynamic_settings(cluster: Cluster, progress: Progress) -> None:
    """Converge the DCS to the spec; patronictl leaves an unchanged config alone."""
    progress("applying Patroni's dynamic settings")
    command = edit_config_command(cluster.spec.postgres.dcs_settings())
    last = ["no PostgreSQL node is running"]
    for node in cluster.spec.pg_nodes:
        for container in swarm.running_containers(cluster.client, cluster.stack, node):
            code, output = swarm.exec_in(container, command, timeout=60, user=POSTGRES_USER)
            if code == 0:
                return
            last = output.strip().splitlines()[-1:] or ["no output"]
    raise UserError(
        f"Patroni did not accept its settings ({last[0][:160]}); "
        "check `status`, then run `up` again."
    )
