"""Faults, injected with Docker the way real failures look to the cluster.

Each kind is a small class with ``inject`` and ``heal``: a kill needs no heal
(Swarm restarts the task, the cluster must cope), a partition is undone after
a bounded time so that the node can show it rejoins by itself. Nothing here
chooses a target; :mod:`scenarios` does, from the live cluster.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
from docker.models.containers import Container

from pretix_cluster import swarm
from pretix_cluster.lab import control as lab_control

DOCKERD_LOG = Path("/var/log/dockerd.log")
DOCKERD_STOP_S = 90.0
DOCKERD_START_S = 120.0


class Fault(ABC):
    """One fault: ``inject`` breaks, ``heal`` undoes what is undoable (idempotent)."""

    kind: str = "fault"
    needs_heal: bool = False

    @abstractmethod
    def inject(self) -> None: ...

    def heal(self) -> None:
        """Nothing to undo by default: Swarm replaces what was killed."""
        return None

    @abstractmethod
    def describe(self) -> str: ...


@dataclass
class Kill(Fault):
    """SIGKILL to the container's main process: a crashed machine, no clean shutdown."""

    container: Container
    kind: str = "kill -9"

    def inject(self) -> None:
        self.container.kill(signal="SIGKILL")

    def describe(self) -> str:
        return f"kill -9 {self.container.name}"


FREEZE_ATTEMPTS = 3
FREEZE_RETRY_S = 2.0


@dataclass
class Freeze(Fault):
    """`docker pause`: every process of the container stopped at once (the freezer
    cgroup): a hung machine or a stalled VM. Sockets stay open and nothing answers,
    so only timeouts tell the others; unlike a kill, Swarm sees a running task and
    restarts nothing. Heal thaws it; the node must then find its place by itself.
    """

    container: Container
    kind: str = "freeze"
    needs_heal: bool = True
    frozen: bool = False

    def inject(self) -> None:
        # The engine refuses a pause while the container is between states (a health
        # check exec starting, say): try again briefly.
        _with_retries(self.container.pause)
        self.frozen = True

    def heal(self) -> None:
        if not self.frozen:
            return
        _with_retries(self._thaw)
        self.frozen = False

    def _thaw(self) -> None:
        self.container.reload()
        if self.container.status == "paused":
            self.container.unpause()

    def describe(self) -> str:
        return f"freeze {self.container.name} (docker pause)"


def _with_retries(action: Callable[[], None]) -> None:
    for attempt in range(1, FREEZE_ATTEMPTS + 1):
        try:
            action()
            return
        except docker.errors.APIError:
            if attempt == FREEZE_ATTEMPTS:
                raise
            time.sleep(FREEZE_RETRY_S)


@dataclass
class AllOf(Fault):
    """Several faults at once (a majority of etcd frozen, every PostgreSQL node cut off):
    injected in order, healed all, each heal tried even when another one fails."""

    parts: list[Fault]
    kind: str = "several"
    needs_heal: bool = True

    def inject(self) -> None:
        done: list[Fault] = []
        try:
            for part in self.parts:
                part.inject()
                done.append(part)
        except Exception:
            for part in done:
                part.heal()
            raise

    def heal(self) -> None:
        errors = []
        for part in self.parts:
            try:
                part.heal()
            except Exception as exc:  # the others must be healed all the same
                errors.append(exc)
        if errors:
            raise errors[0]

    def describe(self) -> str:
        return "; ".join(part.describe() for part in self.parts)


# Everything but loopback: Docker's DNS (127.0.0.11) and the container's own
# healthcheck keep working, every peer is silent.
PARTITION_RULES = (("INPUT", "-i"), ("OUTPUT", "-o"))


def partition_rules(action: str) -> list[list[str]]:
    """iptables commands that drop (``-I``) or restore (``-D``) all non-loopback traffic."""
    return [
        [
            "iptables",
            "-w",
            action,
            chain,
            *(["1"] if action == "-I" else []),
            "!",
            flag,
            "lo",
            "-j",
            "DROP",
        ]
        for chain, flag in PARTITION_RULES
    ]


@dataclass
class Partition(Fault):
    """Drop every packet to and from the container (iptables in its network namespace).

    The process keeps running and believes it is fine: the others must notice
    (no heartbeat, no leader key) and must not let two nodes accept writes.
    Packets vanish as on a cut link, no error comes back. Not `docker network
    disconnect`: reconnecting a Swarm task that way does not bring its service
    name back into Docker's DNS, so the node could never rejoin (seen with a
    partitioned Redis master that stayed unreachable for good).
    """

    container: Container
    kind: str = "partition"
    needs_heal: bool = True
    pid: int | None = None

    def inject(self) -> None:
        self.container.reload()
        self.pid = int(self.container.attrs["State"]["Pid"])
        for command in partition_rules("-I"):
            self._in_netns(command, check=True)

    def heal(self) -> None:
        if self.pid is None:
            return
        # The task may have been restarted meanwhile: its namespace (and the
        # rules) went with it, so a failing delete is fine.
        for command in partition_rules("-D"):
            self._in_netns(command, check=False)
        self.pid = None

    def _in_netns(self, command: list[str], *, check: bool) -> None:
        nsenter = ["nsenter", "-t", str(self.pid), "-n"]
        subprocess.run(nsenter + command, check=check, capture_output=True, timeout=30)

    def describe(self) -> str:
        return f"drop all traffic of {self.container.name} (iptables in its namespace)"


@dataclass
class MachineKill(Fault):
    """A lab machine dies: `docker kill` of its node, every container on it at once; heal
    starts it again with its disk, and it rejoins the swarm by itself."""

    lab: str
    machine: str
    kind: str = "machine lost"
    needs_heal: bool = True
    killed: bool = False

    def inject(self) -> None:
        lab_control.kill_node(self.lab, self.machine)
        self.killed = True

    def heal(self) -> None:
        if self.killed:
            lab_control.start_node(self.lab, self.machine, lambda message: None)
            self.killed = False

    def describe(self) -> str:
        return f"kill the lab machine {self.machine} (its node container)"


def machine_partition(lab: str, machine: str) -> Partition:
    """A lab machine cut off from every other: its node's traffic dropped, as for a task."""
    return Partition(lab_control.node_container(lab, machine), kind="machine partition")


@dataclass(frozen=True)
class DaemonProcess:
    pid: int
    argv: list[str]


def find_dockerd(proc: Path = Path("/proc")) -> DaemonProcess | None:
    """The running dockerd, found through /proc (no systemd on such machines)."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if argv and os.path.basename(argv[0]) == "dockerd":
            return DaemonProcess(int(entry.name), argv)
    return None


def has_systemd() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


@dataclass
class DaemonRestart(Fault):
    """Restart the Docker daemon: every container stops and Swarm starts them again.

    With systemd it is ``systemctl restart docker``; without it dockerd is a
    background process: SIGTERM it, wait until it is gone, start the same command
    line again, detached, logging to /var/log/dockerd.log.
    """

    kind: str = "restart dockerd"
    argv: list[str] = field(default_factory=list)

    def inject(self) -> None:
        if has_systemd():
            subprocess.run(["systemctl", "restart", "docker"], check=True, timeout=300)
        else:
            self._restart_background()
        _wait_docker(DOCKERD_START_S)

    def _restart_background(self) -> None:
        daemon = find_dockerd()
        if daemon is None:
            raise RuntimeError("no dockerd process found in /proc")
        self.argv = daemon.argv
        os.kill(daemon.pid, signal.SIGTERM)
        deadline = time.monotonic() + DOCKERD_STOP_S
        while Path(f"/proc/{daemon.pid}").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"dockerd (pid {daemon.pid}) did not stop in {DOCKERD_STOP_S}s")
            time.sleep(0.5)
        with DOCKERD_LOG.open("ab") as log:
            subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def describe(self) -> str:
        return "restart the Docker daemon"


def _wait_docker(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            swarm.connect().close()
            return
        except Exception:  # UserError while the socket is not there yet
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
