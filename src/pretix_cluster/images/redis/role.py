#!/usr/bin/python3
"""redis-role: decides at start whether this Redis node is the master or a replica.

Prints one line for the entrypoint, ``master`` or ``replica HOST PORT``, and exits 0;
or exits 1 after waiting REDIS_ROLE_WAIT_S without a safe answer, so that Swarm
restarts the task and it asks again.

The rules (:func:`decide`), in order:

1. The only configured node, with no Sentinel configured, is the master (a lone Redis).
2. A majority of the configured Sentinels naming one address names the master.
3. Without a majority, a node follows a master only if that master is confirmed: it
   answers ROLE as master and has replicas, or an answering Sentinel names it.
4. The first node in the list becomes master only at the very first bootstrap of an
   empty set: no answering Sentinel names a master, no other node answers with data
   or replicas, and this node has no data.
5. Otherwise it waits: never master by list order when data or a master may exist.

Standard library only (the image has Debian's python3, nothing else). It asks with
redis-cli, the password read from the Docker secret and handed to redis-cli on its
standard input (``--askpass``): never in an env var or on a command line.

Environment (non-secret, set by the stack from the spec):
  REDIS_NODE_NAME   this node's DNS name, e.g. redis-2
  REDIS_NODES       "redis-1,redis-2,redis-3": every Redis node, in the spec's order
  REDIS_SENTINELS   "sentinel-1,sentinel-2,sentinel-3" (empty names are skipped)
  REDIS_MASTER_NAME Sentinel's master group name
  REDIS_PORT, SENTINEL_PORT
  REDIS_ROLE_WAIT_S how long to keep asking before giving up (default 60)
"""

from __future__ import annotations

import enum
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

PASSWORD_FILE = Path("/run/secrets/redis_password")
DATA_DIR = Path("/data")
DEFAULT_WAIT_S = 60
RETRY_INTERVAL_S = 2
CLI_TIMEOUT_S = 3
MASTER = "master"
REPLICA = "slave"  # what Redis 7 still calls a replica in ROLE and INFO
T = TypeVar("T")


# --- parsed redis-cli answers --------------------------------------------------------


@dataclass(frozen=True)
class Address:
    host: str
    port: int


@dataclass(frozen=True)
class SentinelAnswer:
    """``SENTINEL get-master-addr-by-name``: the master's address, or None when this
    Sentinel monitors no master of that name (redis-cli prints an empty line)."""

    master: Address | None

    @classmethod
    def from_redis_cli(cls, output: str) -> SentinelAnswer:
        lines = output.split("\n")
        lines = [line.strip() for line in lines if line.strip()]
        if not lines:
            return cls(None)
        if len(lines) != 2 or not lines[1].isdigit():
            raise ValueError(f"not an address: {output!r}")
        return cls(Address(lines[0], int(lines[1])))


@dataclass(frozen=True)
class Role:
    """``ROLE``: master (with its replicas) or replica (with its master)."""

    role: str
    replicas: tuple[Address, ...] = ()
    master: Address | None = None

    @classmethod
    def from_redis_cli(cls, output: str) -> Role:
        # redis-cli flattens the nested reply: a master prints its offset, then host,
        # port and offset per replica; a replica prints master host, port, link state
        # and offset.
        lines = [line.strip() for line in output.strip().split("\n")]
        kind, rest = lines[0], lines[1:]
        if kind == MASTER:
            triples = rest[1:]
            if len(triples) % 3:
                raise ValueError(f"not a master's ROLE: {output!r}")
            pairs = zip(triples[0::3], triples[1::3], strict=True)
            return cls(MASTER, tuple(Address(host, int(port)) for host, port in pairs))
        if kind == REPLICA and len(rest) >= 2:
            return cls(REPLICA, master=Address(rest[0], int(rest[1])))
        raise ValueError(f"not a Redis node's ROLE: {output!r}")

    @property
    def is_master(self) -> bool:
        return self.role == MASTER


@dataclass(frozen=True)
class Replication:
    """``INFO replication``: what tells whether a node ever held data."""

    role: str
    connected_replicas: int
    offset: int

    @classmethod
    def from_redis_cli(cls, output: str) -> Replication:
        fields = dict(line.strip().split(":", 1) for line in output.splitlines() if ":" in line)
        try:
            return cls(
                fields["role"], int(fields["connected_slaves"]), int(fields["master_repl_offset"])
            )
        except (KeyError, ValueError):
            raise ValueError(f"not INFO replication: {output!r}") from None

    @property
    def has_data(self) -> bool:
        """A replica, a master with replicas or one that replicated anything: part of a
        set that may hold data. (A master without replicas accepts no write: the
        cluster's min-replicas-to-write is 1.)"""
        return self.role == REPLICA or self.connected_replicas > 0 or self.offset > 0


@dataclass(frozen=True)
class Peer:
    """Another Redis node that answered both questions."""

    role: Role
    replication: Replication


# --- the decision ----------------------------------------------------------------------


@dataclass(frozen=True)
class Observations:
    """What this node saw: every configured Sentinel's and peer's answer (None: no
    answer), and whether its own volume holds data."""

    me: str
    my_addresses: frozenset[str]  # its name and IPs, as a Sentinel may name it
    nodes: tuple[str, ...]  # every Redis node, the spec's order
    redis_port: int
    sentinels: Mapping[str, SentinelAnswer | None]
    peers: Mapping[str, Peer | None]
    has_data: bool


class Kind(enum.Enum):
    MASTER = "master"
    REPLICA = "replica"
    WAIT = "wait"


@dataclass(frozen=True)
class Decision:
    kind: Kind
    reason: str
    master: Address | None = None  # whom a replica follows

    def line(self) -> str:
        """What the entrypoint reads."""
        if self.kind is Kind.REPLICA and self.master:
            return f"replica {self.master.host} {self.master.port}"
        return self.kind.value


def decide(seen: Observations) -> Decision:
    """The rules of the module docstring, in order."""
    return (
        _lone_node(seen)
        or _sentinel_majority(seen)
        or _confirmed_master(seen)
        or _first_bootstrap(seen)
        or Decision(Kind.WAIT, _why_waiting(seen))
    )


def _lone_node(seen: Observations) -> Decision | None:
    if seen.nodes == (seen.me,) and not seen.sentinels:
        return Decision(Kind.MASTER, "the only Redis node, no Sentinel configured")
    return None


def _named_masters(seen: Observations) -> Counter[Address]:
    return Counter(a.master for a in seen.sentinels.values() if a and a.master)


def _follow(seen: Observations, master: Address, reason: str) -> Decision:
    if master.host in seen.my_addresses:
        return Decision(Kind.MASTER, reason)
    return Decision(Kind.REPLICA, reason, master)


def _sentinel_majority(seen: Observations) -> Decision | None:
    majority = len(seen.sentinels) // 2 + 1
    for master, votes in _named_masters(seen).items():
        if votes >= majority:
            reason = f"{votes} of {len(seen.sentinels)} Sentinels name {master.host}"
            return _follow(seen, master, reason)
    return None


def _confirmed_master(seen: Observations) -> Decision | None:
    named = {a.host for a in _named_masters(seen)}
    confirmed = [
        name
        for name, peer in seen.peers.items()
        if peer and peer.role.is_master and (peer.role.replicas or name in named)
    ]
    if len(confirmed) != 1:
        return None
    [name] = confirmed
    reason = f"no Sentinel majority; {name} answers as master, with replicas or named by a Sentinel"
    return Decision(Kind.REPLICA, reason, Address(name, seen.redis_port))


def _first_bootstrap(seen: Observations) -> Decision | None:
    if seen.nodes[0] != seen.me or seen.has_data or _named_masters(seen):
        return None
    if any(p and (p.role.is_master or p.replication.has_data) for p in seen.peers.values()):
        return None
    return Decision(
        Kind.MASTER, "first bootstrap: no master known anywhere, no data, first in the list"
    )


def _why_waiting(seen: Observations) -> str:
    answered = sum(a is not None for a in seen.sentinels.values())
    named = ", ".join(f"{a.host} ({n})" for a, n in _named_masters(seen).items()) or "none"
    peers = ", ".join(
        f"{name}: {p.role.role if p else 'no answer'}" for name, p in seen.peers.items()
    )
    return (
        f"no safe role yet: {answered} of {len(seen.sentinels)} Sentinels answered, "
        f"masters named: {named}; peers: {peers}; own data: {seen.has_data}"
    )


# --- asking (I/O) ----------------------------------------------------------------------

Cli = Callable[[str, int, Sequence[str]], str | None]


def redis_cli(password: str) -> Cli:
    """redis-cli with a hard timeout, the password on its standard input."""

    def ask(host: str, port: int, command: Sequence[str]) -> str | None:
        try:
            done = subprocess.run(
                ["redis-cli", "--askpass", "-h", host, "-p", str(port), *command],
                input=password + "\n",
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return None
        # redis-cli exits 0 after a server error too; an error reply has no newline-free
        # form we could mistake for an answer, the parsers reject it.
        return done.stdout if done.returncode == 0 else None

    return ask


def _parsed(parse: Callable[[str], T], output: str | None) -> T | None:
    if output is None:
        return None
    try:
        return parse(output)
    except ValueError:
        return None


@dataclass(frozen=True)
class Settings:
    me: str
    nodes: tuple[str, ...]
    sentinels: tuple[str, ...]
    master_name: str
    redis_port: int
    sentinel_port: int
    wait_s: float

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def names(key: str) -> tuple[str, ...]:
            return tuple(n for n in env.get(key, "").split(",") if n)

        settings = cls(
            env["REDIS_NODE_NAME"],
            names("REDIS_NODES"),
            names("REDIS_SENTINELS"),
            env["REDIS_MASTER_NAME"],
            int(env["REDIS_PORT"]),
            int(env["SENTINEL_PORT"]),
            float(env.get("REDIS_ROLE_WAIT_S", DEFAULT_WAIT_S)),
        )
        if settings.me not in settings.nodes:
            raise ValueError(f"REDIS_NODE_NAME {settings.me} is not in REDIS_NODES")
        return settings


def observe(settings: Settings, ask: Cli, data_dir: Path) -> Observations:
    """Asks everyone at once: a hung Sentinel or peer costs one timeout, not one each."""
    question = ["SENTINEL", "get-master-addr-by-name", settings.master_name]
    peers = [n for n in settings.nodes if n != settings.me]
    with ThreadPoolExecutor(max_workers=len(settings.sentinels) + len(peers) or 1) as pool:
        sentinels = {
            s: pool.submit(_ask_sentinel, ask, s, settings.sentinel_port, question)
            for s in settings.sentinels
        }
        answers = {n: pool.submit(_ask_peer, ask, n, settings.redis_port) for n in peers}
    return Observations(
        me=settings.me,
        my_addresses=_my_addresses(settings.me),
        nodes=settings.nodes,
        redis_port=settings.redis_port,
        sentinels={s: future.result() for s, future in sentinels.items()},
        peers={n: future.result() for n, future in answers.items()},
        has_data=_has_data(data_dir),
    )


def _ask_sentinel(
    ask: Cli, sentinel: str, port: int, question: Sequence[str]
) -> SentinelAnswer | None:
    return _parsed(SentinelAnswer.from_redis_cli, ask(sentinel, port, question))


def _ask_peer(ask: Cli, node: str, port: int) -> Peer | None:
    role = _parsed(Role.from_redis_cli, ask(node, port, ["ROLE"]))
    if role is None:
        return None
    replication = _parsed(Replication.from_redis_cli, ask(node, port, ["INFO", "replication"]))
    return None if replication is None else Peer(role, replication)


def _my_addresses(me: str) -> frozenset[str]:
    try:
        _, _, ips = socket.gethostbyname_ex(socket.gethostname())
    except OSError:
        ips = []
    return frozenset([me, *ips])


def _has_data(data_dir: Path) -> bool:
    """Any RDB or AOF file: this node ran before and may hold the only copy of data."""
    aof = data_dir / "appendonlydir"
    return (data_dir / "dump.rdb").exists() or (aof.is_dir() and any(aof.iterdir()))


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} redis-role: {message}", file=sys.stderr, flush=True)


def main() -> int:
    try:
        settings = Settings.from_env(os.environ)
        password = PASSWORD_FILE.read_text().strip()
    except (KeyError, ValueError, OSError) as exc:
        log(f"FATAL: {exc}")
        return 1
    ask = redis_cli(password)
    deadline = time.monotonic() + settings.wait_s
    logged = ""
    while True:
        decision = decide(observe(settings, ask, DATA_DIR))
        if decision.kind is not Kind.WAIT:
            log(f"{settings.me} starts as {decision.line()}: {decision.reason}")
            print(decision.line())
            return 0
        if time.monotonic() >= deadline:
            log(f"gave up after {settings.wait_s:.0f} s, Swarm restarts me: {decision.reason}")
            return 1
        if decision.reason != logged:  # a line per change, not one every retry
            log(decision.reason)
            logged = decision.reason
        time.sleep(RETRY_INTERVAL_S)


if __name__ == "__main__":
    sys.exit(main())
