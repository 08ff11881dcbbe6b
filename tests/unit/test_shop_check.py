"""The load test's first question to the shop (loadtest/runner.py `_check_shop`), against a
real local HTTP server: a shop that starts answering a few seconds late is waited for, one
that never answers is one sentence."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest

from pretix_cluster.errors import UserError
from pretix_cluster.loadtest.runner import _check_shop
from pretix_cluster.shop_tls import ShopTrust

TRUST = ShopTrust(None, "127.0.0.1")


class _Healthy(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthcheck/" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_shop_that_starts_answering_late_is_waited_for():
    port = _free_port()
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve_later():
        time.sleep(2.5)  # nothing listens until then (refused), as while nginx restarts
        servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", port), _Healthy))
        servers[0].serve_forever()

    threading.Thread(target=serve_later, daemon=True).start()
    try:
        _check_shop(f"http://127.0.0.1:{port}", None, TRUST, wait_s=20)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_a_shop_that_never_answers_is_one_sentence_after_the_wait():
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(UserError, match=r"did not answer healthy within 3 s \(ConnectError\)"):
        _check_shop(f"http://127.0.0.1:{port}", None, TRUST, wait_s=3)
    assert time.monotonic() - started >= 3
