"""nginx, the one entry point: nginx.conf in front of pretix's web service.

Its probe is pretix's own health check, asked through it
(:func:`pretix_cluster.daemons.pretix.probe_health`): a healthy nginx in front
of a broken pretix is no service.

The edge also decides what a buyer sees while the data tier is down: pretix
answers 500 then (or no web replica answers: nginx's own 502/504), and nginx
replaces that with a clear 503 page (JSON under /api/) saying when to retry.

With ``[waiting_room]`` on, nginx also admits buyers (``waiting_room.lua`` in the
image): at most ``buyers_per_node`` active in the shop through each nginx, the others
in line on a page nginx answers itself: 503, ``Retry-After`` and their place in
:data:`POSITION_HEADER`, which the load test follows like a browser.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from pretix_cluster.daemons import Run
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
# The waiting room: its page (a config beside the 503 pages), the key signing its cookies
# (the state folder's secret of that name), the header naming a waiting buyer's place,
# and the marker in the page that nginx replaces with it.
PAGE_WAITING = "waiting.html"
WAITING_ROOM_KEY = "waiting_room_key"
POSITION_HEADER = "X-Waiting-Room"
POSITION_MARKER = "@@position@@"
# The page's reload interval: `refresh`, or a second for a buyer near the front.
REFRESH_MARKER = "@@refresh@@"
# On the answer of a request that waited at the door (nginx held it until a place was
# free, then passed it on): the seconds it waited there, the queue's, not pretix's.
WAITED_HEADER = "X-Waiting-Room-Waited"
WAITING_ROOM_DICT = "waiting_room"
# One entry per active buyer and per waiting one (~100 bytes each): room for ~80,000.
WAITING_ROOM_DICT_SIZE = "8m"
# Where `status` reads a room's state, in the container, on the health check's port.
WAITING_ROOM_STATUS_PATH = "/_cluster/waiting-room"
# Where the image keeps waiting_room.lua (images/nginx/Dockerfile).
LUA_DIR = "/usr/share/pretix-cluster/lua"
# Within an event's pages, what a buyer never queues for: the API (integrations, box
# office), the back office, global plugin URLs (payment webhooks under /_<plugin>/) and
# event-level webhooks.
NEVER_WAITING_PREFIXES = (API_PREFIX, "/control/", "/_")
NEVER_WAITING_PARTS = ("/webhook/",)
# A placed order's pages: never queued for, and reaching one ends the purchase, so the
# buyer's place goes to the next in line at once. Without this a place would stay taken
# for active_timeout after every purchase (at 2 s per purchase and 60 s, 30 times the
# time it is used).
PURCHASE_DONE_PARTS = ("/order/",)
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
        "waiting_room": waiting_room_context(spec),
    }


def waiting_room_context(spec: ClusterSpec) -> dict[str, object] | None:
    """waiting_room.lua's settings; None without a waiting room."""
    room = spec.waiting_room
    if not room.enabled:
        return None
    return {
        "lua_dir": LUA_DIR,
        "dict": WAITING_ROOM_DICT,
        "dict_size": WAITING_ROOM_DICT_SIZE,
        "status_path": WAITING_ROOM_STATUS_PATH,
        "settings": {
            "dict": WAITING_ROOM_DICT,
            "buyers": room.buyers_per_node,
            "refresh": room.refresh,
            "active_timeout": room.active_timeout,
            "admitted_for": room.admitted_for,
            "secure": spec.tls_enabled,
            "key_file": f"{SECRETS_DIR}/{WAITING_ROOM_KEY}",
            "page_file": f"{PAGES_DIR}/{PAGE_WAITING}",
            "marker": POSITION_MARKER,
            "refresh_marker": REFRESH_MARKER,
            "position_header": POSITION_HEADER,
            "waited_header": WAITED_HEADER,
            "exempt_prefixes": list(NEVER_WAITING_PREFIXES),
            "exempt_parts": list(NEVER_WAITING_PARTS),
            "done_parts": list(PURCHASE_DONE_PARTS),
        },
    }


def page_files(spec: ClusterSpec) -> tuple[str, ...]:
    """The pages nginx mounts in PAGES_DIR: the 503 pages, and the waiting room's when on."""
    pages = (PAGE_HTML, PAGE_JSON)
    return (*pages, PAGE_WAITING) if spec.waiting_room.enabled else pages


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


def secret_files(spec: ClusterSpec) -> tuple[str, ...]:
    """The secrets nginx mounts in SECRETS_DIR: the TLS pair, the waiting room's key."""
    tls = (TLS_CERT, TLS_KEY) if spec.tls_enabled else ()
    room = (WAITING_ROOM_KEY,) if spec.waiting_room.enabled else ()
    return (*tls, *room)


def waiting_page_context(spec: ClusterSpec) -> dict[str, object]:
    """waiting.html.j2's values: markers where nginx puts the buyer's place and reload."""
    return {"refresh": REFRESH_MARKER, "position": POSITION_MARKER}


@dataclass(frozen=True)
class WaitingRoomState:
    """One nginx's waiting room: its places, how many are taken, who waits."""

    places: int
    active: int  # places held by buyers active in the shop
    waiting: int  # buyers in line who asked within the last few reloads
    tickets: int  # places in line handed out since this nginx started
    admitted: int  # buyers let in since this nginx started

    @classmethod
    def from_json(cls, text: str) -> WaitingRoomState:
        data = json.loads(text)
        return cls(**{name: int(data[name]) for name in cls.__dataclass_fields__})

    @classmethod
    def from_http_answer(cls, answer: str) -> WaitingRoomState | None:
        """The state in nginx's raw HTTP answer; None for anything but a 200."""
        parts = re.split(r"\r?\n\r?\n", answer, maxsplit=1)
        if len(parts) != 2 or " 200 " not in parts[0].splitlines()[0]:
            return None
        return cls.from_json(parts[1])

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def waiting_room_request(spec: ClusterSpec) -> list[str]:
    """The command that asks the room's state inside an nginx container (HTTP/1.0)."""
    # The image has no HTTP client: bash's /dev/tcp, as its health check does.
    return [
        "bash",
        "-c",
        f"exec 3<>/dev/tcp/127.0.0.1/{health_port(spec)} && "
        f"printf 'GET {WAITING_ROOM_STATUS_PATH} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 "
        "&& cat <&3",
    ]


def probe_waiting_room(run: Run, spec: ClusterSpec, timeout: float) -> WaitingRoomState | None:
    """The room of the nginx that ``run`` runs in; None when it does not answer."""
    answer = run(waiting_room_request(spec), timeout)
    return None if answer is None else WaitingRoomState.from_http_answer(answer)
