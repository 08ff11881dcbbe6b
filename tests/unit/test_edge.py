"""The shop's edge: nginx.conf with and without TLS, the 503 pages, nginx's service, [tls]."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pretix_cluster.daemons import nginx
from pretix_cluster.daemons.pretix import HEALTH_PATH, LIVE_PATH
from pretix_cluster.errors import UserError
from pretix_cluster.images.build import COMPONENTS, ImageSet
from pretix_cluster.render.configs import nginx_files
from pretix_cluster.render.stack import nginx_service
from pretix_cluster.spec import PORTS, ClusterSpec, parse_spec
from pretix_cluster.tls import LocalCA

HTTPS = {"cluster": {"url": "https://tickets.example.org:8443"}, "nginx": {"port": 8443}}
HTTP = {"cluster": {"url": "http://127.0.0.1:8080"}}
UNAVAILABLE = f"location = {nginx.UNAVAILABLE_LOCATION} "
FIXTURES = Path(__file__).parents[1] / "fixtures"
IMAGES = ImageSet({c: f"pretix-cluster/{c}:unit" for c in COMPONENTS})


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    return LocalCA.ensure(tmp_path_factory.mktemp("ca")).issue(["tickets.example.org"])


KEY = "waiting-room-key-for-the-tests"


def files_of(raw: dict, edge=None) -> dict[str, str]:
    values = {nginx.WAITING_ROOM_KEY: KEY}
    return {f.name: f.content for f in nginx_files(parse_spec(raw), values, edge)}


def conf_of(raw: dict) -> str:
    return files_of(raw)["nginx.conf"]


def block(conf: str, header: str) -> str:
    """The body of the first `header {...}` block (braces balanced), e.g. "location / "."""
    start = conf.index(header + "{") + len(header) + 1
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(conf[end], 0)
        end += 1
    return conf[start : end - 1]


def servers(conf: str) -> list[str]:
    bodies, rest = [], conf
    while "    server {" in rest:
        body = block(rest, "    server ")
        bodies.append(body)
        rest = rest[rest.index(body) + len(body) :]
    return bodies


# --- nginx.conf -----------------------------------------------------------------------------


def test_with_tls_the_shop_port_serves_the_secret_certificate():
    shop = servers(conf_of(HTTPS))[-1]
    assert f"listen {PORTS.nginx} ssl default_server" in shop
    assert f"ssl_certificate {nginx.SECRETS_DIR}/{nginx.TLS_CERT};" in shop
    assert f"ssl_certificate_key {nginx.SECRETS_DIR}/{nginx.TLS_KEY};" in shop


def test_with_tls_plain_http_answers_health_and_redirects_everything_else():
    redirect, _ = servers(conf_of(HTTPS))
    assert f"listen {PORTS.nginx_http} default_server;" in redirect
    assert "return 200" in block(redirect, "location = /nginx-health ")
    assert "return 301 https://tickets.example.org:8443$request_uri;" in block(
        redirect, "location / "
    )
    assert "proxy_pass" not in redirect


def test_hsts_is_on_every_https_answer_and_follows_the_spec():
    conf = conf_of(HTTPS)
    header = 'add_header Strict-Transport-Security "max-age=31536000" always;'
    shop = servers(conf)[-1]
    # add_header in a location replaces the server's: each such location repeats it.
    for where in ("location /static/ ", "location /media/ ", UNAVAILABLE):
        assert header in block(shop, where), where
    assert header in shop.split("location")[0]
    assert "Strict-Transport-Security" not in servers(conf)[0]
    no_hsts = conf_of(HTTPS | {"tls": {"hsts_max_age": 0}})
    assert "Strict-Transport-Security" not in no_hsts
    assert "max-age=600" in conf_of(HTTPS | {"tls": {"hsts_max_age": 600}})


def test_without_tls_the_edge_is_plain_http_as_before():
    conf = conf_of(HTTP)
    (shop,) = servers(conf)
    assert f"listen {PORTS.nginx} default_server" in shop
    assert "ssl" not in conf
    assert "Strict-Transport-Security" not in conf
    assert str(PORTS.nginx_http) not in conf


@pytest.mark.parametrize("raw", [HTTPS, HTTP])
def test_only_the_unavailable_codes_are_replaced_by_the_503_page(raw):
    shop = servers(conf_of(raw))[-1]
    proxied = block(shop, "location / ")
    assert "proxy_intercept_errors on;" in proxied
    pages = re.findall(r"error_page ([0-9 ]+) =503 (\S+);", proxied)
    # A URI (nginx then makes the request a GET), never a named location: there a
    # failed POST or PATCH would meet the static file handler and get 405, not the page.
    codes = " ".join(str(c) for c in nginx.UNAVAILABLE_CODES)
    assert pages == [(codes, nginx.UNAVAILABLE_LOCATION)]
    assert not any(code < 500 for code in nginx.UNAVAILABLE_CODES)
    # Nothing else is intercepted: pretix's 4xx, and every other location, pass unchanged.
    assert shop.count("error_page") == 1
    unavailable = block(shop, UNAVAILABLE)
    assert unavailable.lstrip().startswith("internal;")
    assert f"add_header Retry-After {nginx.RETRY_AFTER_S} always;" in unavailable
    assert f"root {nginx.PAGES_DIR};" in unavailable
    # What was replaced: a 500/502/504 on a POST may have acted, a plain 503 did not.
    assert f"add_header {nginx.UPSTREAM_STATUS_HEADER} $upstream_status always;" in unavailable


def test_api_clients_get_the_json_page_and_browsers_the_html_one():
    # The request's own URI: after the redirect to the page's location $uri names that.
    mapping = block(conf_of(HTTPS), "    map $request_uri $unavailable_page ")
    assert f"~^{nginx.API_PREFIX} /{nginx.PAGE_JSON};" in mapping
    assert f"default /{nginx.PAGE_HTML};" in mapping


@pytest.mark.parametrize("raw", [HTTPS, HTTP])
def test_the_health_check_passes_unchanged_and_the_liveness_path_is_refused(raw):
    shop = servers(conf_of(raw))[-1]
    health = block(shop, f"location = {HEALTH_PATH} ")
    assert "proxy_pass $pretix_upstream;" in health
    assert "error_page" not in health and "intercept" not in health
    assert block(shop, f"location = {LIVE_PATH} ").strip() == "return 404;"


# --- the pages ------------------------------------------------------------------------------


def test_the_pages_say_when_to_retry():
    files = files_of(HTTPS)
    answer = json.loads(files[nginx.PAGE_JSON])
    assert answer["retry_after"] == nginx.RETRY_AFTER_S
    assert f"{nginx.RETRY_AFTER_S} seconds" in answer["detail"]
    page = files[nginx.PAGE_HTML]
    assert f"{nginx.RETRY_AFTER_S} seconds" in page
    assert 'href="https://tickets.example.org:8443/"' in page


# --- nginx's service and files --------------------------------------------------------------


def test_the_pair_reaches_nginx_as_secrets_and_the_pages_as_configs(edge):
    spec = parse_spec(HTTPS)
    by_name = {f.name: f for f in nginx_files(spec, {}, edge)}
    assert by_name[nginx.TLS_KEY].secret and by_name[nginx.TLS_CERT].secret
    assert by_name[nginx.TLS_KEY].content == edge.key_pem.decode()
    assert not any(by_name[n].secret for n in ("nginx.conf", nginx.PAGE_HTML, nginx.PAGE_JSON))
    service = nginx_service(spec, IMAGES)
    assert [(s["source"], s["uid"], s["mode"]) for s in service["secrets"]] == [
        (nginx.TLS_CERT, nginx.NGINX_UID, 0o400),
        (nginx.TLS_KEY, nginx.NGINX_UID, 0o400),
    ]
    targets = {c["source"]: c["target"] for c in service["configs"]}
    assert targets[nginx.PAGE_HTML] == f"{nginx.PAGES_DIR}/{nginx.PAGE_HTML}"
    assert targets[nginx.PAGE_JSON] == f"{nginx.PAGES_DIR}/{nginx.PAGE_JSON}"


def test_published_ports_and_the_health_checks_port_follow_the_url():
    https = parse_spec(HTTPS | {"nginx": {"port": 8443, "http_port": 8000}})
    service = nginx_service(https, IMAGES)
    assert [(p["target"], p["published"]) for p in service["ports"]] == [
        (PORTS.nginx, 8443),
        (PORTS.nginx_http, 8000),
    ]
    assert service["environment"]["NGINX_LISTEN_PORT"] == str(PORTS.nginx_http)
    plain = nginx_service(parse_spec(HTTP), IMAGES)
    assert [p["target"] for p in plain["ports"]] == [PORTS.nginx]
    assert plain["environment"]["NGINX_LISTEN_PORT"] == str(PORTS.nginx)
    assert "secrets" not in plain


# --- [tls] and the URL ----------------------------------------------------------------------


def test_the_default_shop_is_https_with_its_own_http_port():
    spec = ClusterSpec()
    assert spec.cluster.url.startswith("https://") and spec.tls_enabled
    assert spec.local_url() == f"https://127.0.0.1:{spec.nginx.port}"
    assert spec.nginx.http_port != spec.nginx.port
    assert not parse_spec(HTTP).tls_enabled
    assert parse_spec(HTTP).local_url() == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"tls": {"certificate": "shop.pem"}}, "certificate and key go together"),
        ({"tls": {"key": "shop.key"}}, "certificate and key go together"),
        ({"tls": {"ca_file": "ca.pem"}}, "ca_file is for an operator's certificate"),
        ({"tls": {"hsts_max_age": -1}}, "tls.hsts_max_age"),
        ({"tls": {"cert": "shop.pem"}}, "tls.cert: unknown key"),
        ({"nginx": {"port": 8080, "http_port": 8080}}, "http_port must differ"),
        ({"nginx": {"http_port": 0}}, "nginx.http_port"),
    ],
)
def test_impossible_tls_settings_are_refused_with_the_reason(raw, reason):
    with pytest.raises(UserError, match=reason):
        parse_spec(raw)


def test_a_plain_http_edge_may_share_nothing_but_needs_no_distinct_http_port():
    spec = parse_spec(HTTP | {"nginx": {"port": 8080, "http_port": 8080}})
    assert list(nginx.published_ports(spec)) == [PORTS.nginx]


# --- the waiting room -----------------------------------------------------------------------

ROOM = {"waiting_room": {"buyers_per_node": 40, "refresh": 3, "active_timeout": 45}}


def lua_settings(conf: str) -> str:
    """The table nginx.conf hands to waiting_room.lua's init()."""
    return re.search(r'require\("waiting_room"\)\.init\((\{.*\})\)', conf).group(1)


def test_without_a_waiting_room_nginx_loads_no_lua_and_mounts_nothing_more():
    files = files_of(HTTP)
    assert "lua" not in files["nginx.conf"]
    assert set(files) == {"nginx.conf", nginx.PAGE_HTML, nginx.PAGE_JSON}


def test_the_waiting_room_gates_the_shop_location_only():
    conf = conf_of(HTTP | ROOM)
    assert "load_module modules/ngx_http_lua_module.so;" in conf
    shop = servers(conf)[-1]
    assert "access_by_lua_block" in block(shop, "location / ")
    assert conf.count("access_by_lua_block") == 1  # health, static, media: never gated
    assert f"lua_shared_dict {nginx.WAITING_ROOM_DICT} {nginx.WAITING_ROOM_DICT_SIZE};" in conf


def test_the_waiting_rooms_settings_come_from_the_spec():
    settings = lua_settings(conf_of(HTTPS | ROOM))
    for part in ("buyers = 40", "refresh = 3", "active_timeout = 45", "admitted_for = 1800"):
        assert part in settings
    assert "secure = true" in settings  # https: its cookies only over TLS
    assert f'key_file = "{nginx.SECRETS_DIR}/{nginx.WAITING_ROOM_KEY}"' in settings
    assert f'page_file = "{nginx.PAGES_DIR}/{nginx.PAGE_WAITING}"' in settings
    assert '"/api/"' in settings and '"/webhook/"' in settings and '"/order/"' in settings
    assert "secure = false" in lua_settings(conf_of(HTTP | ROOM))


def test_the_waiting_page_carries_the_markers_for_the_place_and_the_reload():
    page = files_of(HTTP | ROOM)[nginx.PAGE_WAITING]
    assert f'<meta http-equiv="refresh" content="{nginx.REFRESH_MARKER}">' in page
    assert nginx.POSITION_MARKER in page


def test_the_key_reaches_nginx_as_a_secret_and_the_page_as_a_config():
    spec = parse_spec(HTTP | ROOM)
    files = {f.name: f for f in nginx_files(spec, {nginx.WAITING_ROOM_KEY: KEY}, None)}
    assert files[nginx.WAITING_ROOM_KEY].secret and files[nginx.WAITING_ROOM_KEY].content == KEY
    assert not files[nginx.PAGE_WAITING].secret
    assert KEY not in files["nginx.conf"].content
    service = nginx_service(spec, IMAGES)
    assert [s["source"] for s in service["secrets"]] == [nginx.WAITING_ROOM_KEY]
    assert service["secrets"][0]["uid"] == nginx.NGINX_UID
    targets = {c["target"] for c in service["configs"]}
    assert f"{nginx.PAGES_DIR}/{nginx.PAGE_WAITING}" in targets


@pytest.mark.parametrize(
    ("room", "reason"),
    [
        ({"admitted_for": 60, "active_timeout": 120}, "admitted_for must be at least"),
        ({"buyers_per_node": -1}, "buyers_per_node"),
        ({"refresh": 0}, "refresh"),
    ],
)
def test_impossible_waiting_room_settings_are_refused_with_the_reason(room, reason):
    with pytest.raises(UserError, match=reason):
        parse_spec({"waiting_room": room})


def test_status_reads_a_rooms_state_from_nginxs_recorded_answer():
    answer = (FIXTURES / "nginx" / "waiting_room_status.txt").read_text()
    state = nginx.WaitingRoomState.from_http_answer(answer)
    assert state == nginx.WaitingRoomState(
        places=6, active=6, waiting=33, tickets=316, admitted=283
    )
    assert nginx.WaitingRoomState.from_http_answer(answer.replace("\n", "\r\n")) == state
    refused = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
    assert nginx.WaitingRoomState.from_http_answer(refused) is None
    runs = []
    probed = nginx.probe_waiting_room(
        lambda command, timeout: runs.append(command) or answer, parse_spec(HTTP | ROOM), 5
    )
    assert probed == state
    assert f"/dev/tcp/127.0.0.1/{PORTS.nginx}" in runs[0][-1]  # http: the shop's own port
    assert (
        f"/dev/tcp/127.0.0.1/{PORTS.nginx_http}"
        in nginx.waiting_room_request(parse_spec(HTTPS | ROOM))[-1]
    )
