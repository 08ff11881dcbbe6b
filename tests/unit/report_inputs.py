"""A recorded-shape load run, small and deterministic: the input every report test renders.

The ledger, CPU samples and orders follow the shapes the load test writes
(ledger-*.jsonl records, cumulative CPU samples, pretix's order JSON); strings a
user or the shop controls carry HTML so that the reports must escape them.
"""

from __future__ import annotations

from typing import Any

from pretix_cluster.loadtest import shapes
from pretix_cluster.loadtest.accounting import reconcile

RUN_ID = "lt1130040000ab12"
T_START = 1_700_000_000.0
DURATION = 240.0
HOSTILE = "<script>alert(1)</script>"


def plan() -> shapes.Plan:
    return shapes.make_plan(
        "phases",
        target_per_min=30.0,
        duration_s=DURATION,
        pace_s=6.0,
        max_users=50,
        weights=(1, 1, 1, 1),
    )


def _attempt(i: int) -> str:
    return f"{i:016x}"


def ledger() -> list[dict[str, Any]]:
    """Completed purchases every 3 s, a failure every 7th, one sold out, one cut short."""
    records: list[dict[str, Any]] = [
        {"attempt": _attempt(999), "phase": "calibration", "outcome": "completed", "t0": 1.0}
    ]
    for i in range(1, 78):
        t0 = T_START + 3.0 * i
        seconds = 1.0 + (i % 5) * 0.4
        record: dict[str, Any] = {
            "attempt": _attempt(i),
            "phase": "load",
            "t0": t0,
            "t1": t0 + seconds,
            "seconds": seconds,
            "outcome": "completed",
            "code": f"C{i:04d}",
            "steps": {"event_page": 0.2, "add_to_cart": 0.3, "confirm": seconds - 0.6},
            "retries": 1 if i % 4 == 0 else 0,
            "retry_kinds": {"busy_503": 1} if i % 4 == 0 else {},
        }
        if i % 7 == 0 and i > 40:
            record |= {
                "outcome": "failed",
                "kind": "timeout" if i % 14 else "sold_out",
                "step": "confirm",
                "message": f"read timeout {HOSTILE}",
            }
            del record["code"]
        records.append(record)
    records.append(
        {
            "attempt": _attempt(500),
            "phase": "load",
            "t0": T_START + 238.0,
            "t1": T_START + 240.0,
            "seconds": 2.0,
            "outcome": "interrupted",
        }
    )
    return records


def ledger_with_waiting_room() -> list[dict[str, Any]]:
    """The same run behind a waiting room at 10x: each buyer of that phase first waited
    8, 9 or 10 s in line (held four times, first at place 10 to 14), then bought as fast."""
    records = ledger()
    held = [
        r
        for r in records
        if r.get("phase") == "load" and r["outcome"] != "interrupted" and r["t0"] >= T_START + 180
    ]
    for n, r in enumerate(held):
        wait = 8.0 + n % 3
        r |= {"queue_s": wait, "queue_holds": 4, "queue_position": 10 + n % 5, "t1": r["t1"] + wait}
    return records


def orders(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The event's orders: every completed purchase, and one of a timed-out buyer (phantom)."""
    out = [
        {
            "code": r["code"],
            "status": "p",
            "email": f"{RUN_ID}-{r['attempt']}@example.org",
            "positions": [{"item": 1}],
        }
        for r in records
        if r.get("code")
    ]
    out.append(
        {
            "code": "PHANT",
            "status": "n",
            "email": f"{RUN_ID}-{_attempt(49)}@example.org",
            "positions": [{"item": 1}],
        }
    )
    return out


def accounting(records: list[dict[str, Any]]) -> dict[str, Any]:
    return reconcile(
        orders(records),
        {"paid_orders": 71, "pending_orders": 1, "total_size": 500},
        run_id=RUN_ID,
        event=RUN_ID,
        item_id=1,
        quota_size=500,
        ledger=records,
    )


def meta() -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "stack": "pretix",
        "scenario": "shop",
        "shape": "phases",
        "target_per_min": 30.0,
        "users_override": None,
        "duration_s": DURATION,
        "oversell": False,
        "event": f"{RUN_ID}{HOSTILE}",
        "quota_size": 500,
        "base_url": "http://127.0.0.1:8080",
        "processes": 0,
        "assets": True,
        "calibration": {"purchases": 2, "completed": 2, "purchase_s": 1.8},
        "started_at": "2023-11-14T22:13:20+00:00",
        "out": "/tmp/results/x",
        "locust_exit_code": 0,
    }


def cpu() -> dict[str, Any]:
    return {
        "generator_cpu_s": 30.0,
        "cluster_by_component": {"web": 120.0, "worker": 60.0, "pg": 30.0, "redis": 5.0},
        "cluster_by_service": {"pretix_web": 120.0, "pretix_worker": 60.0},
        "idle_per_s_by_component": {"web": 0.05, "pg": 0.01},
        "host_busy_s": 300.0,
        "host_cores": 2,
        "orchestrator_cpu_s": 2.0,
        "containers": 9,
        "method": "cgroup files",
    }


def cluster_samples() -> list[tuple[float, dict[str, float]]]:
    """Cumulative CPU-seconds per component every 10 s (six components: one 'other' line)."""
    rates = {"web": 0.5, "worker": 0.25, "pg": 0.12, "redis": 0.02, "nginx": 0.03, "etcd": 0.01}
    return [
        (T_START + t, {c: r * t for c, r in rates.items()}) for t in range(0, int(DURATION) + 1, 10)
    ]


def generator_samples() -> list[tuple[float, float]]:
    return [(T_START + t, 0.125 * t) for t in range(0, int(DURATION) + 1, 10)]


def locust_stats() -> list[dict[str, str]]:
    return [
        {
            "Type": "GET",
            "Name": "event_page",
            "Request Count": "80",
            "Failure Count": "0",
            "50%": "120",
            "95%": "300",
            "99%": "N/A",
        },
        {
            "Type": "POST",
            "Name": f"confirm {HOSTILE}",
            "Request Count": "77",
            "Failure Count": "5",
            "50%": "900",
            "95%": "2000",
            "99%": "2500",
        },
    ]


def history() -> list[dict[str, str]]:
    return [
        {
            "Timestamp": str(int(T_START + t)),
            "Name": "Aggregated",
            "User Count": str(min(t // 20, 8)),
        }
        for t in range(0, int(DURATION) + 1, 5)
    ]
