"""The figures of a scenario, computed from what was recorded: pure functions, no I/O.

- from the samples (:mod:`observe`): when the cluster's own mechanisms noticed
  the fault (each signal separately, and the first of them), when service was
  repaired, when the failed node was back in its place; a repair or rejoin
  exists only after a sample showed the role or the node out of place, and a
  fault that no sample shows at all has "no visible effect";
- from the buyers' ledger: the write-unavailability window (last purchase
  completed before the fault to the first completed after it) and the
  purchases buyers saw fail in it;
- the verdict: nothing lost, oversold or duplicated, and recovered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pretix_cluster.chaos.observe import Sample
from pretix_cluster.daemons import haproxy
from pretix_cluster.loadtest.summary import Accounting

Predicate = Callable[[Sample], bool]

# The last step of a shop purchase only shows the order: an order page loaded
# after the fault proves nothing about writes, so a purchase counts as "after
# the fault" only when it finished confirming after it.
READ_ONLY_LAST_STEP = "order_page"


@dataclass(frozen=True)
class Watch:
    """What to look for in the samples, for one scenario and its live target.

    ``kind``: pg_primary | pg_replica | redis_master | service | daemon |
    etcd_quorum (a majority of etcd members gone) | pg_outage (every PostgreSQL
    node gone). ``service``: the Swarm service (short name) that holds the
    target; ``node``: the target's name inside the cluster (Patroni member,
    Redis node, HAProxy server); ``desired``: running tasks per service before
    the fault; ``nodes``: every member a fault of several hit.
    """

    kind: str
    service: str
    node: str
    desired: dict[str, int]
    nodes: tuple[str, ...] = ()


# --- reading one sample -------------------------------------------------------------


def tasks_short(sample: Sample, watch: Watch) -> bool:
    """Fewer running tasks than before the fault: of the target's service, or of any."""
    tasks = sample.tasks
    if tasks is None:
        return False
    if watch.service not in watch.desired:  # the whole daemon: every service counts
        return any(tasks.get(name, 0) < want for name, want in watch.desired.items())
    return tasks.get(watch.service, 0) < watch.desired[watch.service]


def tasks_complete(sample: Sample, watch: Watch) -> bool:
    tasks = sample.tasks
    if not tasks:
        return False
    return all(tasks.get(name, 0) >= want for name, want in watch.desired.items())


def marked_down(sample: Sample, backend: str, node: str) -> bool:
    """Some answering HAProxy no longer routes ``backend`` to ``node``."""
    return any(node not in up for up in haproxy.up_in_every(sample.haproxy, backend) or [])


def no_primary_routed(sample: Sample) -> bool:
    """Every answering HAProxy (at least one) routes PostgreSQL writes to no server."""
    up = haproxy.up_in_every(sample.haproxy, haproxy.PG_PRIMARY)
    return bool(up) and not any(up)


def etcd_all_healthy(sample: Sample) -> bool:
    return bool(sample.etcd) and all(m.healthy for m in sample.etcd or ())


def pg_members_serving(sample: Sample, nodes: Sequence[str]) -> bool:
    view = sample.patroni
    return view is not None and all(
        (m := view.member(node)) is not None and m.serving for node in nodes
    )


def routed_only_to(sample: Sample, backend: str, node: str | None) -> bool:
    """Every answering HAProxy (at least one) routes ``backend`` to ``node`` and no other."""
    up = haproxy.up_in_every(sample.haproxy, backend)
    return node is not None and bool(up) and all(x == {node} for x in up)


# --- signals: the first sign that a mechanism of the cluster noticed -----------------


def signals(watch: Watch) -> dict[str, Predicate]:
    """Named predicates, each true once one mechanism has noticed the fault."""
    node = watch.node
    found: dict[str, Predicate] = {
        "swarm_task_down": lambda s: tasks_short(s, watch),
    }
    if watch.kind == "pg_primary":
        found["haproxy_marked_down"] = lambda s: marked_down(s, haproxy.PG_PRIMARY, node)
        found["patroni_leader_changed"] = lambda s: (
            s.patroni is not None and (s.patroni.leader is None or s.patroni.leader.name != node)
        )
    if watch.kind in ("pg_primary", "pg_replica"):
        found["patroni_member_gone"] = lambda s: (
            s.patroni is not None and ((m := s.patroni.member(node)) is None or not m.live)
        )
    if watch.kind == "pg_replica":
        found["haproxy_marked_down"] = lambda s: marked_down(s, haproxy.PG_REPLICAS, node)
        found["patroni_sync_moved"] = lambda s: (
            s.patroni is not None
            and ((m := s.patroni.member(node)) is None or not m.is_sync_standby)
        )
    if watch.kind == "redis_master":
        found["haproxy_marked_down"] = lambda s: marked_down(s, haproxy.REDIS, node)
        found["sentinel_down_flag"] = lambda s: (
            s.sentinel is not None and s.sentinel.master.name == node and s.sentinel.master_down
        )
        found["sentinel_new_master"] = lambda s: (
            s.sentinel is not None and s.sentinel.master.name != node
        )
    if watch.kind == "etcd_quorum":
        found["etcd_member_unhealthy"] = lambda s: s.etcd is not None and not etcd_all_healthy(s)
    if watch.kind == "pg_outage":
        found["haproxy_marked_down"] = no_primary_routed
    if watch.kind in ("service", "daemon", "pg_outage"):
        found["healthcheck_failed"] = lambda s: s.health != 200
    return found


def repaired(watch: Watch) -> Predicate:
    """True once the role is served again: by another node (failover) or by the same one
    come back (Swarm restarted it before the cluster failed over)."""
    if watch.kind in ("pg_primary", "pg_outage"):
        return lambda s: (
            s.patroni is not None
            and (leader := s.patroni.leader) is not None
            and leader.running_leader
            and routed_only_to(s, haproxy.PG_PRIMARY, leader.name)
        )
    if watch.kind == "pg_replica":
        return lambda s: (
            s.patroni is not None
            and any(m.is_sync_standby and m.streaming_replica for m in s.patroni.members)
        )
    if watch.kind == "redis_master":
        return lambda s: (
            s.sentinel is not None
            and s.sentinel.master.clean
            and routed_only_to(s, haproxy.REDIS, s.sentinel.master.name)
        )
    if watch.kind == "etcd_quorum":
        return lambda s: etcd_all_healthy(s) and s.health == 200
    return lambda s: tasks_complete(s, watch) and s.health == 200


def rejoined(watch: Watch) -> Predicate:
    """True once the failed node is back in its place by itself: as a replica after a
    failover (an old primary through pg_rewind), in its old role when none happened, or
    its task replaced."""
    node = watch.node
    if watch.kind in ("pg_primary", "pg_replica"):
        return lambda s: (
            s.patroni is not None and (m := s.patroni.member(node)) is not None and m.serving
        )
    if watch.kind == "redis_master":
        return lambda s: (
            s.sentinel is not None
            and (
                (s.sentinel.master.name == node and s.sentinel.master.clean)
                or ((r := s.sentinel.replica(node)) is not None and r.healthy_replica)
            )
        )
    if watch.kind == "pg_outage":
        return lambda s: pg_members_serving(s, watch.nodes)
    if watch.kind == "etcd_quorum":
        return etcd_all_healthy
    return lambda s: tasks_complete(s, watch)


FAILOVER_SIGNALS = {"pg_primary": "patroni_leader_changed", "redis_master": "sentinel_new_master"}


def first_time(samples: Sequence[Sample], predicate: Predicate, after: float) -> float | None:
    """Time of the first sample at or after ``after`` for which ``predicate`` holds."""
    return next((s.t for s in samples if s.t >= after and predicate(s)), None)


@dataclass(frozen=True)
class Recovery:
    """A predicate over the samples after the fault: when a sample first showed it failing,
    and when it held again after that. Neither: it was never seen failing."""

    failed_at: float | None
    recovered_at: float | None

    @property
    def seen_failing(self) -> bool:
        return self.failed_at is not None


def first_recovery(samples: Sequence[Sample], predicate: Predicate, after: float) -> Recovery:
    """When ``predicate`` first failed at or after ``after``, and first held again later.

    A recovery exists only after a failure was seen: right after a kill the views
    are stale (HAProxy still routes to the dead node, Patroni still names it
    leader), so a "healthy" sample before any failing one proves nothing.
    """
    failed_at = None
    for s in samples:
        if s.t < after:
            continue
        if not predicate(s):
            failed_at = s.t if failed_at is None else failed_at
        elif failed_at is not None:
            return Recovery(failed_at, s.t)
    return Recovery(failed_at, None)


@dataclass(frozen=True)
class Timeline:
    """Detection (per signal and first), repair and rejoin, as times and seconds after the
    fault. ``no_visible_effect``: no signal fired and neither the role nor the node was
    ever seen out of place: nothing was repaired or rejoined, so neither has a time."""

    failover: bool | None  # another node took the role over; None: not a role that fails over
    signals_s: dict[str, float | None]
    detected_at: float | None
    detect_s: float | None
    first_signal: str | None
    repaired_at: float | None
    repair_s: float | None
    rejoined_at: float | None
    rejoin_s: float | None
    rejoin_seen_failing: bool
    no_visible_effect: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tasks_back(samples: Sequence[Sample], watch: Watch, fault_at: float) -> dict[str, float]:
    """Per service that lost running tasks after the fault: seconds until it ran all of them
    again (Swarm rescheduled them, or the machine came back). Never back: not listed."""
    back: dict[str, float] = {}
    answered = [s for s in samples if s.tasks is not None]  # a silent probe is no evidence
    for service, want in sorted(watch.desired.items()):

        def complete(s: Sample, service: str = service, want: int = want) -> bool:
            return (s.tasks or {}).get(service, 0) >= want

        recovery = first_recovery(answered, complete, fault_at)
        if recovery.seen_failing and recovery.recovered_at is not None:
            back[service] = round(recovery.recovered_at - fault_at, 2)
    return back


def timeline(samples: Sequence[Sample], watch: Watch, fault_at: float) -> Timeline:
    seen = {name: first_time(samples, p, fault_at) for name, p in signals(watch).items()}
    detected = min((t for t in seen.values() if t is not None), default=None)
    fixed = first_recovery(samples, repaired(watch), fault_at)
    back = first_recovery(samples, rejoined(watch), fault_at)
    failover = FAILOVER_SIGNALS.get(watch.kind)
    return Timeline(
        failover=None if failover is None else seen.get(failover) is not None,
        signals_s={k: _rel(v, fault_at) for k, v in seen.items()},
        detected_at=detected,
        detect_s=_rel(detected, fault_at),
        first_signal=min(
            (k for k, v in seen.items() if v is not None), key=lambda k: seen[k], default=None
        ),
        repaired_at=fixed.recovered_at,
        repair_s=_rel(fixed.recovered_at, fault_at),
        rejoined_at=back.recovered_at,
        rejoin_s=_rel(back.recovered_at, fault_at),
        rejoin_seen_failing=back.seen_failing,
        no_visible_effect=detected is None and not fixed.seen_failing and not back.seen_failing,
    )


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


def completed_while_faulted(
    records: list[dict[str, Any]], fault_at: float, healed_at: float | None
) -> int:
    """Purchases whose order was confirmed while the fault lasted (from injection to heal)."""
    end = healed_at if healed_at is not None else float("inf")
    return sum(
        1
        for r in records
        if r.get("phase") != "calibration"
        and r.get("outcome") == "completed"
        and fault_at < order_placed_at(r) < end
    )


def tasks_replaced(before: dict[str, set[str]], after: dict[str, set[str]]) -> dict[str, int]:
    """Per service: running tasks of before the fault that no longer run after it."""
    return {name: len(ids - after.get(name, set())) for name, ids in sorted(before.items())}


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
    reasons += _observed_reasons(figures.get("timeline") or {})
    reasons += _promise_reasons(figures)
    if figures.get("healthy_at") is None:
        reasons.append("status did not become healthy")
    return {"passed": not reasons, "reasons": reasons}


NO_VISIBLE_EFFECT = (
    "the fault had no visible effect (no signal; the role and the node were never seen "
    "out of place): the scenario proved nothing"
)


def _promise_reasons(figures: dict[str, Any]) -> list[str]:
    """What a scenario promises beyond recovery: sales went on during the fault (etcd
    lost its quorum, PostgreSQL did not), or the application tier was left alone."""
    reasons = []
    if figures.get("keeps_selling") and not figures.get("completed_while_faulted"):
        reasons.append("no purchase completed while the fault lasted")
    replaced = figures.get("tasks_replaced") or {}
    for service in figures.get("keeps_tasks") or ():
        if replaced.get(service):
            reasons.append(f"Swarm replaced {replaced[service]} {service} task(s) during the fault")
    return reasons


def _observed_reasons(observed: dict[str, Any]) -> list[str]:
    """A fault with no visible effect fails: recovery was never exercised, and a pass
    would claim it. A node never seen out of its place needed no rejoin. (A timeline
    recorded before these fields existed is judged as before: detected and rejoined.)"""
    if observed.get("no_visible_effect"):
        return [NO_VISIBLE_EFFECT]
    reasons = []
    if observed.get("detected_at") is None:
        reasons.append("the cluster never showed it noticed the fault")
    if observed.get("rejoined_at") is None and observed.get("rejoin_seen_failing", True):
        reasons.append("the failed node did not rejoin")
    return reasons
