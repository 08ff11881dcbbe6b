"""gunicorn's WSGI application: pretix's own, with the liveness path answered first.

Swarm's health check of a web container must test the process, never a
dependency: pretix's /healthcheck/ needs PostgreSQL and Redis, so a data-tier
outage made every web replica fail it and Swarm replaced them all at once.
This wrapper answers ``PRETIX_LIVE_PATH`` before Django (no database, no
cache, no session): a 200 means a gunicorn worker took the request. The edge
refuses the path, so buyers never see it.
"""

import os

from pretix.wsgi import application as pretix_application

LIVE_PATH = os.environ.get("PRETIX_LIVE_PATH", "/_cluster/live")
_LIVE_HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", "3"),
    ("Cache-Control", "no-store"),
]


def application(environ, start_response):
    if environ.get("PATH_INFO") == LIVE_PATH:
        start_response("200 OK", _LIVE_HEADERS)
        return [b"ok\n"]
    return pretix_application(environ, start_response)
