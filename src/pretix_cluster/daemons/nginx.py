"""nginx, the one entry point: nginx.conf in front of pretix's web service.

Its probe is pretix's own health check, asked through it
(:func:`pretix_cluster.daemons.pretix.probe_health`): a healthy nginx in front
of a broken pretix is no service.
"""

from __future__ import annotations

from pretix_cluster.spec import PORTS, ClusterSpec

CLIENT_MAX_BODY_SIZE = "20m"


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
    }
