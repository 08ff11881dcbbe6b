"""Container health checks for the pretix image (called by entrypoint.sh).

    healthcheck.py web    GET http://127.0.0.1:8000/healthcheck/ with the Host of
                          [pretix] url; healthy on HTTP 200 (pretix checks DB,
                          redis and cache in that view).
    healthcheck.py cron   the heartbeat file is younger than 2*interval+60 s.

Exit code 0 = healthy, 1 = unhealthy.  Uses only the standard library so it
does not import Django (cheap enough to run every few seconds).
"""

import configparser
import os
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse


def _site_host() -> str:
    url = os.environ.get("PRETIX_PRETIX_URL")
    if not url:
        cp = configparser.RawConfigParser()
        cp.read([os.environ.get("PRETIX_CONFIG_FILE", "/etc/pretix/pretix.cfg")], encoding="utf-8")
        url = cp.get("pretix", "url", fallback="http://localhost:8000")
    return urlparse(url).netloc or "localhost"


def check_web() -> int:
    port = os.environ.get("PRETIX_WEB_PORT", "8000")
    timeout = float(os.environ.get("PRETIX_HEALTHCHECK_TIMEOUT", "5"))
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthcheck/",
        headers={"Host": _site_host(), "User-Agent": "pretix-cluster-healthcheck"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        print(f"web unhealthy: HTTP {e.code}: {e.read(200)!r}")
        return 1
    except Exception as e:  # connection refused, timeout, ...
        print(f"web unhealthy: {e!r}")
        return 1
    if status != 200:
        print(f"web unhealthy: HTTP {status}")
        return 1
    return 0


def check_cron() -> int:
    path = os.environ.get("PRETIX_CRON_HEARTBEAT", "/tmp/cron-heartbeat")
    interval = int(os.environ.get("PRETIX_CRON_INTERVAL", "300"))
    max_age = 2 * interval + 60
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        print(f"cron unhealthy: no heartbeat file {path}")
        return 1
    if age > max_age:
        print(f"cron unhealthy: heartbeat is {age:.0f}s old (max {max_age}s)")
        return 1
    return 0


def main(argv) -> int:
    role = argv[1] if len(argv) > 1 else ""
    if role == "web":
        return check_web()
    if role == "cron":
        return check_cron()
    print(f"healthcheck.py: unsupported role {role!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
