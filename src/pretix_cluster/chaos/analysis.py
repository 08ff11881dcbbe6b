"""The figures of a scenario, computed from what was recorded: pure functions, no I/O.

- from the samples (:mod:`observe`): when the cluster's own mechanisms noticed
  the fault (each signal separately, and the first of them), when service was
  repaired, when the failed node was back in its place;
- from the buyers' ledger: the write-unavailability window (last purchase
  completed before the fault to the first completed after it) and the
  purchases buyers saw fail in it;
- the verdict: nothing lost, oversold or duplicated, and recovered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pretix_cluster.loadtest.summary import Accounting

Sample = dict[str, Any]
Predicate = Callable[[Sample], bool]

# The last step of a shop purchase only shows the order: an order page loaded
# after the fault proves nothing about writes, so a purchase counts as "after
# the fault" only when it finished confirming after it.
READ_ONLY_LAST_STEP = "order_page"
LIVE_MEMBER_STATES = ("running", "streaming")


@dataclass(frozen=True)
class Watch:
    """What to look for in the samples, for one scenario and its live target.

    ``kind``: pg_primary | pg_replica | redis_master | service | daemon.
    ``service``: the Swarm service (short name) that holds the target;
    ``node``: the target's name inside the cluster (Patroni member, Redis node,
    HAProxy server); ``desired``: running tasks per service before the fault.
    """

    kind: str
    service: str
    node: str
    desired: dict[str, int]


# --- reading one sample -------------------------------------------------------------


def _up(state: str | None) -> bool:
    return bool(state) and state.startswith("UP")  # "UP 1/2" is still up (going down)


def haproxy_up_servers(sample: Sample, backend: str) -> list[set[str]] | None:
    """Per answering HAProxy, the servers it routes ``backend`` to; None when none answered."""
    views = sample.get("haproxy")
    if not views:
        return None
    return [{s for s, st in (v.get(backend) or {}).items() if _up(st)} for v in views.values()]


def patroni_leader(sample: Sample) -> str | None:
    members = sample.get("patroni") or []
    leaders = [m["name"] for m in members if m.get("role") == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def patroni_member(sample: Sample, name: str) -> dict | None:
    return next((m for m in sample.get("patroni") or [] if m.get("name") == name), None)


def tasks_short(sample: Sample, watch: Watch) -> bool:
    """Fewer running tasks than before the fault: of the target's service, or of any."""
    tasks = sample.get("tasks")
    if tasks is None:
        return False
    if watch.service not in watch.desired:  # the whole daemon: every service counts
        return any(tasks.get(name, 0) < want for name, want in watch.desired.items())
    return tasks.get(watch.service, 0) < watch.desired[watch.service]


def tasks_complete(sample: Sample, watch: Watch) -> bool:
    tasks = sample.get("tasks")
    if not tasks:
        return False
    return all(tasks.get(name, 0) >= want for name, want in watch.desired.items())


# --- signals: the first sign that a mechanism of the cluster noticed -----------------


def signals(watch: Watch) -> dict[str, Predicate]:
    """Named predicates, each true once one mechanism has noticed the fault."""
    node = watch.node
    found: dict[str, Predicate] = {
        "swarm_task_down": lambda s: tasks_short(s, watch),
    }
    if watch.kind == "pg_primary":
        found["haproxy_marked_down"] = lambda s: any(
            node not in up for up in haproxy_up_servers(s, "pg_primary") or []
        )
        found["patroni_leader_changed"] = lambda s: (
            s.get("patroni") is not None and patroni_leader(s) != node
        )
    if watch.kind in ("pg_primary", "pg_replica"):
        found["patroni_member_gone"] = lambda s: (
            s.get("patroni") is not None
            and ((m := patroni_member(s, node)) is None or m.get("state") not in LIVE_MEMBER_STATES)
        )
    if watch.kind == "pg_replica":
        found["haproxy_marked_down"] = lambda s: any(
            node not in up for up in haproxy_up_servers(s, "pg_replicas") or []
        )
        found["patroni_sync_moved"] = lambda s: (
            s.get("patroni") is not None
            and ((m := patroni_member(s, node)) is None or m.get("role") != "sync_standby")
        )
    if watch.kind == "redis_master":
        found["haproxy_marked_down"] = lambda s: any(
            node not in up for up in haproxy_up_servers(s, "redis") or []
        )
        found["sentinel_down_flag"] = lambda s: (
            s.get("sentinel") is not None
            and s["sentinel"].get("master") == node
            and any(f in (s["sentinel"].get("flags") or "") for f in ("s_down", "o_down"))
        )
        found["sentinel_new_master"] = lambda s: (
            s.get("sentinel") is not None and s["sentinel"].get("master") != node
        )
    if watch.kind in ("service", "daemon"):
        found["healthcheck_failed"] = lambda s: s.get("health") != 200
    return found


def _clean(flags: str | None) -> bool:
    return not any(f in (flags or "") for f in ("s_down", "o_down", "disconnected"))


def repaired(watch: Watch) -> Predicate:
    """True once the role is served again: by another node (failover) or by the same one
    come back (Swarm restarted it before the cluster failed over)."""
    if watch.kind == "pg_primary":
        return lambda s: (
            (leader := patroni_leader(s)) is not None
            and (patroni_member(s, leader) or {}).get("state") == "running"
            and bool(up := haproxy_up_servers(s, "pg_primary"))
            and all(x == {leader} for x in up)
        )
    if watch.kind == "pg_replica":
        return lambda s: any(
            m.get("role") == "sync_standby" and m.get("state") == "streaming"
            for m in s.get("patroni") or []
        )
    if watch.kind == "redis_master":
        return lambda s: (
            s.get("sentinel") is not None
            and _clean(s["sentinel"].get("flags"))
            and bool(up := haproxy_up_servers(s, "redis"))
            and all(x == {s["sentinel"].get("master")} for x in up)
        )
    return lambda s: tasks_complete(s, watch) and s.get("health") == 200


def rejoined(watch: Watch) -> Predicate:
    """True once the failed node is back in its place by itself: as a replica after a
    failover (an old primary through pg_rewind), in its old role when none happened, or
    its task replaced."""
    node = watch.node
    if watch.kind in ("pg_primary", "pg_replica"):
        return lambda s: (
            (m := patroni_member(s, node)) is not None
            and (
                (m.get("role") == "leader" and m.get("state") == "running")
                or (m.get("role") in ("replica", "sync_standby") and m.get("state") == "streaming")
            )
        )
    if watch.kind == "redis_master":
        return lambda s: (
            s.get("sentinel") is not None
            and (
                (s["sentinel"].get("master") == node and _clean(s["sentinel"].get("flags")))
                or (
                    (r := s["sentinel"]["replicas"].get(node)) is not None
                    and r.get("flags") == "slave"
                    and r.get("link") == "ok"
                )
            )
        )
    return lambda s: tasks_complete(s, watch)


FAILOVER_SIGNALS = {"pg_primary": "patroni_leader_changed", "redis_master": "sentinel_new_master"}


def first_time(samples: list[Sample], predicate: Predicate, after: float) -> float | None:
    """Time of the first sample at or after ``after`` for which ``predicate`` holds."""
    for s in samples:
        if s["t"] >= after:
            try:
                if predicate(s):
                    return s["t"]
            except (KeyError, TypeError, AttributeError):
                continue
    return None


def first_recovery(samples: list[Sample], predicate: Predicate, after: float) -> float | None:
    """First time ``predicate`` holds again after a sample (at or after ``after``) showed it
    failing; when no sample ever did, the first time it held (the role was never seen out).

    Right after a kill the views are stale (HAProxy still routes to the dead node,
    Patroni still names it leader): a "healthy" sample then proves nothing.
    """
    seen_failing, first_ok = False, None
    for s in samples:
        if s["t"] < after:
            continue
        try:
            ok = bool(predicate(s))
        except (KeyError, TypeError, AttributeError):
            continue  # a probe that did not answer is no evidence either way
        if not ok:
            seen_failing = True
        elif seen_failing:
            return s["t"]
        elif first_ok is None:
            first_ok = s["t"]
    return None if seen_failing else first_ok


def timeline(samples: list[Sample], watch: Watch, fault_at: float) -> dict[str, Any]:
    """Detection (per signal and first), repair and rejoin, in seconds after the fault."""
    seen = {name: first_time(samples, p, fault_at) for name, p in signals(watch).items()}
    detected = min((t for t in seen.values() if t is not None), default=None)
    fixed = first_recovery(samples, repaired(watch), fault_at)
    back = first_recovery(samples, rejoined(watch), fault_at)
    failover = FAILOVER_SIGNALS.get(watch.kind)
    return {
        # Whether another node took the role over (None: not a role that fails over).
        "failover": None if failover is None else seen.get(failover) is not None,
        "signals_s": {k: _rel(v, fault_at) for k, v in seen.items()},
        "detected_at": detected,
        "detect_s": _rel(detected, fault_at),
        "first_signal": min(
            (k for k, v in seen.items() if v is not None), key=lambda k: seen[k], default=None
        ),
        "repaired_at": fixed,
        "repair_s": _rel(fixed, fault_at),
        "rejoined_at": back,
        "rejoin_s": _rel(back, fault_at),
    }


def _rel(t: float | None, origin: float) -> float | None:
    return None if t is None else round(t - origin, 2)


# --- the buyers' side: the write-unavailability window -------------------------------


def order_placed_at(record: dict[str, Any]) -> float:
    """When a completed purchase had its order confirmed (before the read-only order page)."""
    return record["t1"] - (record.get("steps") or {}).get(READ_ONLY_LAST_STEP, 0.0)


def write_window(records: list[dict[str, Any]], fault_at: float) -> dict[str, Any]:
    """From the last purchase completed before the fault to the first completed after it.

    Calibration purchases are not part of the load and are ignored. Failed
    purchases "in the window" are those that ended in it (what buyers saw);
    failures after the fault are counted as well, by kind.
    """
    load = [r for r in records if r.get("phase") != "calibration" and "t1" in r]
    done = [r for r in load if r.get("outcome") == "completed"]
    before = [r["t1"] for r in done if r["t1"] <= fault_at]
    after = [r["t1"] for r in done if order_placed_at(r) > fault_at]
    last_ok = max(before, default=None)
    first_ok = min(after, default=None)
    # "interrupted": Locust stopped the buyer at the end of the load, not the cluster's doing.
    failed = [r for r in load if r.get("outcome") == "failed"]
    lo = last_ok if last_ok is not None else fault_at
    hi = first_ok if first_ok is not None else float("inf")
    in_window = [r for r in failed if lo <= r["t1"] <= hi]
    after_fault = [r for r in failed if r["t1"] > fault_at]
    return {
        "last_ok_before_at": last_ok,
        "first_ok_after_at": first_ok,
        "window_s": None if last_ok is None or first_ok is None else round(first_ok - last_ok, 2),
        "first_ok_after_s": _rel(first_ok, fault_at),
        "completed_before": len(before),
        "completed_after": len(after),
        "failed_in_window": len(in_window),
        "failed_after_fault": len(after_fault),
        "failed_kinds_after_fault": dict(Counter(r.get("kind") or "?" for r in after_fault)),
        "interrupted_at_end": sum(1 for r in load if r.get("outcome") == "interrupted"),
        "retries_after_fault": sum(r.get("retries") or 0 for r in load if r["t1"] > fault_at),
    }


# --- the verdict ---------------------------------------------------------------------------


def integrity(accounting: Accounting | None) -> dict[str, Any]:
    """Lost, oversold, duplicated and phantom orders from the load test's accounting."""
    if accounting is None or accounting.quota is None:
        problems = list(accounting.problems) if accounting else []
        return {"checked": False, "problems": problems or ["no accounting"]}
    return {
        "checked": True,
        "lost": len(accounting.missing),
        "not_live": len(accounting.completed_but_not_live),
        "oversold": accounting.quota.oversold_by,
        "duplicated": accounting.duplicates.count,
        "phantom_unacknowledged": len(accounting.phantom_unacknowledged),
        "phantom_unknown": len(accounting.phantom_unknown),
        "orders_in_db": accounting.orders_in_db,
        "completed_by_buyers": accounting.completed_by_buyers,
    }


def verdict(figures: dict[str, Any]) -> dict[str, Any]:
    """Pass only with nothing lost/oversold/duplicated and a full recovery, else the reasons."""
    reasons: list[str] = []
    if figures.get("error"):
        reasons.append(figures["error"])
    data = figures.get("integrity") or {}
    if not data.get("checked"):
        reasons.append("accounting did not run: " + "; ".join(data.get("problems") or []))
    else:
        for key, label in (
            ("lost", "lost"),
            ("not_live", "confirmed but canceled/expired"),
            ("oversold", "oversold"),
            ("duplicated", "duplicated"),
        ):
            if data.get(key):
                reasons.append(f"{data[key]} {label}")
    window = figures.get("window") or {}
    if window.get("first_ok_after_at") is None:
        reasons.append("no purchase completed after the fault")
    observed = figures.get("timeline") or {}
    if observed.get("detected_at") is None:
        reasons.append("the cluster never showed it noticed the fault")
    if observed.get("rejoined_at") is None:
        reasons.append("the failed node did not rejoin")
    if figures.get("healthy_at") is None:
        reasons.append("status did not become healthy")
    return {"passed": not reasons, "reasons": reasons}
