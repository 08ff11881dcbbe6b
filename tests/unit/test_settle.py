"""bench.settle: the bench measures a stack only once its start has died down."""

from pretix_cluster.bench import settle


def _host(busy_per_window: list[float], cores: int = 2):
    """A fake /proc/stat: each read advances one window in which `busy` cores were busy."""
    state = {"busy": 0.0, "total": 0.0, "i": -1}

    def read() -> tuple[float, float]:
        if state["i"] >= 0:
            state["busy"] += busy_per_window[state["i"]] * settle.WINDOW_S
            state["total"] += cores * settle.WINDOW_S
        state["i"] += 1
        return state["busy"], state["total"]

    return read


def _wait(windows: list[float], timeout: float = settle.SETTLE_TIMEOUT):
    said: list[str] = []
    done = settle.wait_until_quiet(
        2, said.append, timeout=timeout, read=_host(windows), sleep=lambda s: None
    )
    return done, said


def test_waits_for_two_quiet_windows_in_a_row():
    # starting processes keep the host busy, one quiet window between is not enough
    done, said = _wait([1.8, 1.2, 0.4, 0.9, 0.4, 0.3, 1.5])
    assert done == settle.Settled(waited_s=60.0, busy_cores=0.3, quiet=True)
    assert len(said) == 5  # every window but the last quiet one
    assert said[0].startswith("settling: 1.80 of 2 cores busy")


def test_an_idle_host_costs_two_windows():
    done, _ = _wait([0.2, 0.2])
    assert done.quiet and done.waited_s == 2 * settle.WINDOW_S


def test_a_host_that_stays_busy_ends_the_wait_unsettled():
    done, said = _wait([1.0] * 10, timeout=50)
    assert done == settle.Settled(waited_s=50.0, busy_cores=1.0, quiet=False)
    assert len(said) == 5
