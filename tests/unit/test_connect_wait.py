"""The pretix image's connect policy: wait through a failover, not through an outage."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

MODULE = (
    Path(__file__).parents[2] / "src/pretix_cluster/images/pretix/pretix_cluster_db/connect_wait.py"
)


def _module():
    spec = importlib.util.spec_from_file_location("connect_wait", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


connect_wait = _module()


class Down(Exception):
    """What psycopg raises when HAProxy closes a connection it has no server for."""


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def database(up_at: float, clock: Clock):
    """A connect that fails until the clock reaches ``up_at`` (a new primary)."""
    calls = []

    def attempt():
        calls.append(clock.now)
        if clock.now < up_at:
            raise Down("server closed the connection unexpectedly")
        return "connection"

    return attempt, calls


def policy(clock: Clock):
    return connect_wait.ConnectWait(25, 30, clock=clock, sleep=clock.sleep)


def test_a_connection_made_at_once_does_not_wait():
    clock = Clock()
    attempt, calls = database(0, clock)
    assert policy(clock).connect(attempt, Down) == "connection"
    assert calls == [100.0] and clock.slept == []


def test_a_request_waits_for_the_new_primary_with_growing_pauses():
    clock = Clock()
    attempt, calls = database(100 + 19.5, clock)  # a failover's ~20 s
    assert policy(clock).connect(attempt, Down) == "connection"
    assert clock.now >= 119.5
    assert clock.slept[:4] == [0.25, 0.5, 1.0, 2.0]
    assert max(clock.slept) == connect_wait.LONGEST_PAUSE_S
    assert len(calls) == len(clock.slept) + 1


def test_the_wait_is_bounded_and_then_the_error_is_the_databases():
    clock = Clock()
    attempt, _ = database(10_000, clock)
    wait = policy(clock)
    with pytest.raises(Down):
        wait.connect(attempt, Down)
    assert 100 + 25 - connect_wait.LONGEST_PAUSE_S <= clock.now <= 125


def test_after_a_wait_ran_out_requests_fail_fast_until_the_pause_is_over():
    """An outage: no worker is held again for the wait while it lasts."""
    clock = Clock()
    attempt, calls = database(10_000, clock)
    wait = policy(clock)
    with pytest.raises(Down):
        wait.connect(attempt, Down)
    gave_up = clock.now
    calls.clear()
    clock.now = gave_up + 29
    with pytest.raises(Down):
        wait.connect(attempt, Down)
    assert len(calls) == 1 and clock.now == gave_up + 29  # one try, no sleep
    clock.now = gave_up + 30
    calls.clear()
    with pytest.raises(Down):
        wait.connect(attempt, Down)
    assert len(calls) > 1  # waiting again: it may be a failover by now


def test_a_success_ends_the_fast_failing():
    clock = Clock()
    wait = policy(clock)
    with pytest.raises(Down):
        wait.connect(database(10_000, clock)[0], Down)
    clock.now += 30
    attempt, _ = database(clock.now + 3, clock)
    assert wait.connect(attempt, Down) == "connection"
    assert wait.waiting()


def test_other_errors_are_not_retried():
    clock = Clock()

    def attempt():
        raise ValueError("bad password")

    with pytest.raises(ValueError):
        policy(clock).connect(attempt, Down)
    assert clock.slept == []
