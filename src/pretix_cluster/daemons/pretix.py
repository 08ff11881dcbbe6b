"""pretix (web and worker): pretix.cfg, and its /healthcheck/ asked through nginx.

The health check needs the database and Redis: a 200 means that a buyer's
request through the one entry point can reach everything it needs.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from pretix_cluster.daemons.patroni import DB_NAME, DB_USER
from pretix_cluster.spec import PORTS, ClusterSpec

METRICS_USER = "metrics"
HEALTH_PATH = "/healthcheck/"
# Liveness: answered by gunicorn's WSGI wrapper before Django, so it needs no data tier.
# Swarm's check asks for it on the container itself; the edge refuses it (404).
LIVE_PATH = "/_cluster/live"


def config_context(spec: ClusterSpec, values: dict[str, str]) -> dict[str, object]:
    """pretix.cfg.j2's values: every connection goes through HAProxy."""
    return {
        "url": spec.cluster.url,
        "instance_name": f"pretix ({spec.stack})",
        "currency": spec.shop.currency,
        "db": {
            "host": "haproxy",
            "port": PORTS.haproxy_pg_primary,
            "name": DB_NAME,
            "user": DB_USER,
            "password": values["pg_pretix_password"],
            "connect_wait": spec.postgres.connect_wait,
        },
        "replica": {"host": "haproxy", "port": PORTS.haproxy_pg_replicas},
        "redis": {
            "host": "haproxy",
            "port": PORTS.haproxy_redis,
            "password": values["redis_password"],
        },
        "django_secret": values["django_secret"],
        "metrics": (
            {"user": METRICS_USER, "passphrase": values["metrics_passphrase"]}
            if spec.web.metrics
            else None
        ),
        "s3": s3_context(spec, values),
    }


def s3_context(spec: ClusterSpec, values: dict[str, str]) -> dict[str, str] | None:
    """[pretix_cluster_s3] for the image's settings module: media in an S3 bucket."""
    media = spec.media
    if media.kind != "s3":
        return None
    return {
        "endpoint": media.s3_endpoint,
        "bucket": media.s3_bucket,
        "region": media.s3_region,
        "access_key": values["s3_access_key"],
        "secret_key": values["s3_secret_key"],
    }


@dataclass(frozen=True)
class HealthCheck:
    """pretix's /healthcheck/ through nginx: the status code, or why there was none."""

    url: str
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    def to_json(self) -> dict[str, Any]:
        """``{"url", "status"}`` or ``{"url", "error"}``, as `status --json` prints it."""
        answer = {"status": self.status} if self.error is None else {"error": self.error}
        return {"url": self.url} | answer


def probe_health(spec: ClusterSpec, verify: ssl.SSLContext, timeout: float = 10) -> HealthCheck:
    """The health check through nginx on this machine, with the shop's Host header.

    `verify`: the shop's trust (:meth:`pretix_cluster.shop_tls.ShopTrust.verify`).
    """
    url = spec.local_url() + HEALTH_PATH
    try:
        response = httpx.get(
            url, headers={"Host": spec.shop_netloc}, timeout=timeout, verify=verify
        )
        return HealthCheck(url, status=response.status_code)
    except httpx.HTTPError as exc:
        return HealthCheck(url, error=str(exc)[:120])
