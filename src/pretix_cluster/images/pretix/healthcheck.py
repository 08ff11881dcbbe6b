"""Container health checks for the pretix image (called by entrypoint.sh).

Swarm acts on these, so each tests the process itself, never the data tier: a
PostgreSQL or Redis outage must not make Swarm restart the application tier.

    healthcheck.py web    GET http://127.0.0.1:8000<PRETIX_LIVE_PATH>, answered by
                          gunicorn's WSGI wrapper before Django: healthy on HTTP 200.
    healthcheck.py worker celery's main process is alive and not stopped, and its
                          pool has at least one live process (read from /proc).
    healthcheck.py cron   the heartbeat file is younger than 2*interval+60 s.

Readiness (can this replica serve a buyer?) is pretix's /healthcheck/, read
through the edge by `pretix-cluster status`, not by Swarm.

Exit code 0 = healthy, 1 = unhealthy.  Uses only the standard library so it
does not import Django (cheap enough to run every few seconds).
"""

import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
NOT_RUNNING_STATES = {"T", "t", "Z", "X"}  # stopped, traced, zombie, dead


def check_web() -> int:
    port = os.environ.get("PRETIX_WEB_PORT", "8000")
    path = os.environ.get("PRETIX_LIVE_PATH", "/_cluster/live")
    timeout = float(os.environ.get("PRETIX_HEALTHCHECK_TIMEOUT", "5"))
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"User-Agent": "pretix-cluster-healthcheck"}
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


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    state: str
    argv: tuple[str, ...]

    @classmethod
    def from_proc(cls, directory: Path) -> "Process":
        stat = (directory / "stat").read_text()
        # The command name in parentheses may hold spaces: split after its last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        argv = (directory / "cmdline").read_bytes().split(b"\0")
        return cls(
            pid=int(directory.name),
            ppid=int(fields[1]),
            state=fields[0],
            argv=tuple(a.decode(errors="replace") for a in argv if a),
        )

    @property
    def running(self) -> bool:
        return self.state not in NOT_RUNNING_STATES

    @property
    def is_celery_worker(self) -> bool:
        names = [os.path.basename(a) for a in self.argv[:3]]
        return "celery" in names and "worker" in self.argv


def processes(proc: Path = PROC) -> list[Process]:
    found = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                found.append(Process.from_proc(entry))
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                continue  # ended while we looked
    return found


def worker_problem(procs: list[Process]) -> str | None:
    """Why celery is not alive, or None: its main process runs and has a live pool."""
    workers = {p.pid: p for p in procs if p.is_celery_worker}
    mains = [p for p in workers.values() if p.ppid not in workers]
    if not mains:
        return "no celery worker process"
    main = mains[0]
    if not main.running:
        return f"celery's main process {main.pid} is in state {main.state}"
    pool = [p for p in procs if p.ppid == main.pid and p.running]
    if not pool:
        return f"celery's main process {main.pid} has no live pool process"
    return None


def check_worker() -> int:
    problem = worker_problem(processes())
    if problem:
        print(f"worker unhealthy: {problem}")
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
    if role == "worker":
        return check_worker()
    if role == "cron":
        return check_cron()
    print(f"healthcheck.py: unsupported role {role!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
