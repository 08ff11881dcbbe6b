"""nginx, the one entry point: nginx.conf in front of pretix's web service.

Its probe is pretix's own health check, asked through it
(:func:`pretix_cluster.daemons.pretix.probe_health`): a healthy nginx in front
of a broken pretix is no service.

The edge also decides what a buyer sees while the data tier is down: pretix
answers 500 then (or no web replica answers: nginx's own 502/504), and nginx
replaces that with a clear 503 page (JSON under /api/) saying when to retry.
"""

from __future__ import annotations

from pretix_cluster.daemons.pretix import HEALTH_PATH, LIVE_PATH
from pretix_cluster.spec import PORTS, ClusterSpec

CLIENT_MAX_BODY_SIZE = "20m"
RETRY_AFTER_S = 30
# pretix's 500 (a dependency failed) and nginx's own 502/503/504 (no replica, timeout).
# pretix's 4xx pass unchanged.
UNAVAILABLE_CODES = (500, 502, 503, 504)
API_PREFIX = "/api/"
# On the 503 page: what pretix (or the connection to it) answered, empty when no web
# replica was reached. A client must not take a replaced 500/502/504 on a POST for a
# plain "busy": the order may have been placed.
UPSTREAM_STATUS_HEADER = "X-Upstream-Status"
# The logical names of the files nginx mounts besides nginx.conf (render/configs.py).
PAGE_HTML = "unavailable.html"
PAGE_JSON = "unavailable.json"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"
PAGES_DIR = "/etc/nginx/unavailable"
# The internal location error_page redirects to; the outside gets 404 for it.
UNAVAILABLE_LOCATION = "/_cluster/unavailable"
SECRETS_DIR = "/run/secrets"
NGINX_UID = "33"  # www-data in the nginx image


def config_context(spec: ClusterSpec) -> dict[str, object]:
    """nginx.conf.j2's values."""
    return {
        "server_name": spec.shop_host,
        # Host with the port: Django's CSRF origin check compares it with Origin.
        "proxy_host": spec.shop_netloc,
        # web is a dnsrr service (see render/stack.py): nginx resolves it per request.
        "upstream": f"web:{PORTS.web}",
        "listen_port": PORTS.nginx,
        "client_max_body_size": CLIENT_MAX_BODY_SIZE,
        "tls": tls_context(spec),
        "unavailable": {
            "codes": UNAVAILABLE_CODES,
            "retry_after": RETRY_AFTER_S,
            "dir": PAGES_DIR,
            "location": UNAVAILABLE_LOCATION,
            "html": PAGE_HTML,
            "json": PAGE_JSON,
            "api_prefix": API_PREFIX,
            "upstream_status_header": UPSTREAM_STATUS_HEADER,
        },
        "health_path": HEALTH_PATH,
        "live_path": LIVE_PATH,
    }


def tls_context(spec: ClusterSpec) -> dict[str, object] | None:
    """The HTTPS server's settings; None with an http URL (plain HTTP, as before)."""
    if not spec.tls_enabled:
        return None
    return {
        "certificate": f"{SECRETS_DIR}/{TLS_CERT}",
        "key": f"{SECRETS_DIR}/{TLS_KEY}",
        "hsts_max_age": spec.tls.hsts_max_age,
        "http_port": PORTS.nginx_http,
        "redirect_to": spec.cluster.url,
    }


def health_port(spec: ClusterSpec) -> int:
    """Where the container's health check asks /nginx-health in plain HTTP."""
    return PORTS.nginx_http if spec.tls_enabled else PORTS.nginx


def published_ports(spec: ClusterSpec) -> dict[int, int]:
    """Container port -> published port: the shop, and with TLS the redirecting HTTP port."""
    ports = {PORTS.nginx: spec.nginx.port}
    if spec.tls_enabled:
        ports[PORTS.nginx_http] = spec.nginx.http_port
    return ports


def page_context(spec: ClusterSpec) -> dict[str, object]:
    """unavailable.html.j2's and unavailable.json.j2's values."""
    return {"retry_after": RETRY_AFTER_S, "shop_url": spec.cluster.url}
