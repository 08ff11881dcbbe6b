"""After the run: the database's orders against the buyers' ledger, and the quota.

- **missing** (lost): a buyer saw the order page / got the 201 with an order
  code, but the event has no such order (or it is canceled/expired). A buyer
  whose order placement answered with the order's URL but whose order page then
  failed counts as having that order ("confirmed, order page failed");
- **phantom**: the event has an order no buyer completed. The buyer's e-mail
  names the attempt, so a phantom is *unacknowledged* when its attempt failed
  or was cut short after the order was placed (e.g. a timeout on confirm: the
  buyer never learnt of the order), and *unknown* when no attempt of this run
  explains it;
- **duplicates**: one attempt with several orders (a retry that bought twice),
  or one order code claimed by two attempts;
- **quota**: sold positions (pending + paid orders, from the orders and from
  ``/quotas/{id}/availability/``) never exceed the quota's size.

The run sells from its own event, so every order of that event must be in the
ledger; nothing is filtered by time.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from pretix_cluster.loadtest.flows import attempt_of_email
from pretix_cluster.loadtest.pretixapi import PretixApi

LIVE_STATUSES = ("n", "p")  # pending (manual payment) and paid: they hold quota
STATUS_NAMES = {"n": "pending", "p": "paid", "e": "expired", "c": "canceled"}


def account(
    api: PretixApi,
    *,
    run_id: str,
    event: str,
    item_id: int,
    quota_id: int,
    quota_size: int,
    ledger: list[dict[str, Any]],
    evidence: Path | None = None,
) -> dict[str, Any]:
    """The event's orders vs the ledger; ``ok`` when nothing is lost, extra or oversold.

    ``evidence``: where to keep the orders and the quota's availability as pretix
    answered them, so that a failed accounting can be explained after the run.
    """
    orders = api.orders(event)
    availability = api.quota_availability(event, quota_id)
    if evidence is not None:
        evidence.write_text(json.dumps({"orders": orders, "availability": availability}, indent=1))
    return reconcile(
        orders,
        availability,
        run_id=run_id,
        event=event,
        item_id=item_id,
        quota_size=quota_size,
        ledger=ledger,
    )


def reconcile(
    orders: list[dict[str, Any]],
    availability: dict[str, Any],
    *,
    run_id: str,
    event: str,
    item_id: int,
    quota_size: int,
    ledger: list[dict[str, Any]],
) -> dict[str, Any]:
    """The pure comparison (no I/O), see the module doc."""
    db = {o["code"]: o for o in orders}
    completed: dict[str, list[str]] = defaultdict(list)  # code -> attempts claiming it
    attempts = {r["attempt"]: r for r in ledger if r.get("attempt")}
    unseen: list[str] = []  # order placed and its URL known, but the order page failed
    for r in ledger:
        if r.get("outcome") == "completed" and r.get("code"):
            completed[r["code"]].append(r["attempt"])
        elif r.get("outcome") == "failed" and r.get("code_hint"):
            unseen.append(r["code_hint"])
            completed[r["code_hint"]].append(r["attempt"])

    missing = sorted(c for c in completed if c not in db)
    not_live = sorted(c for c in completed if c in db and db[c].get("status") not in LIVE_STATUSES)
    phantom = sorted(c for c in db if c not in completed)
    unacknowledged, unknown = [], []
    for code in phantom:
        attempt = attempt_of_email(db[code].get("email") or "", run_id)
        record = attempts.get(attempt or "")
        if record is not None and record.get("outcome") in ("failed", "interrupted"):
            unacknowledged.append(
                {
                    "code": code,
                    "attempt": attempt,
                    "kind": record.get("kind"),
                    "step": record.get("step"),
                    "retry_kinds": record.get("retry_kinds") or {},
                    "message": (record.get("message") or "")[:200],
                }
            )
        else:
            unknown.append(code)

    by_attempt: dict[str, list[str]] = defaultdict(list)
    for code, order in db.items():
        attempt = attempt_of_email(order.get("email") or "", run_id)
        if attempt:
            by_attempt[attempt].append(code)
    several = {a: sorted(c) for a, c in by_attempt.items() if len(c) > 1}
    claimed_twice = sorted(c for c, a in completed.items() if len(a) > 1)

    sold = sum(
        1
        for o in orders
        if o.get("status") in LIVE_STATUSES
        for p in o.get("positions", [])
        if p.get("item") == item_id and not p.get("canceled", False)
    )
    sold_api = int(availability.get("paid_orders") or 0) + int(
        availability.get("pending_orders") or 0
    )
    size = availability.get("total_size", quota_size)
    oversold = size is not None and max(sold, sold_api) > size

    problems = []
    if missing:
        problems.append(f"{len(missing)} order(s) a buyer saw are not in the database (lost)")
    if not_live:
        problems.append(f"{len(not_live)} order(s) a buyer saw are canceled or expired")
    # An order whose buyer saw an error or was cut off at the end of the run is
    # counted (phantom_unacknowledged) but is no fault: it exists and pretix
    # mails it. Only an order that no buyer's attempt explains is one.
    if unknown:
        problems.append(f"{len(unknown)} order(s) in the database that no buyer attempted")
    if several or claimed_twice:
        problems.append(
            f"duplicates: {len(several)} attempt(s) with several orders, "
            f"{len(claimed_twice)} code(s) claimed twice"
        )
    if oversold:
        problems.append(f"quota oversold: {max(sold, sold_api)} sold > {size}")

    outcomes = Counter(r.get("outcome") for r in ledger)
    return {
        "ok": not problems,
        "problems": problems,
        "event": event,
        "orders_in_db": len(db),
        "orders_by_status": dict(
            Counter(STATUS_NAMES.get(o.get("status"), o.get("status")) for o in orders)
        ),
        "attempts_in_ledger": len(ledger),
        "ledger_outcomes": dict(outcomes),
        "completed_by_buyers": len(completed),
        "confirmed_order_page_failed": sorted(unseen),
        "matched": len([c for c in completed if c in db]),
        "missing": missing,
        "completed_but_not_live": not_live,
        "phantom": phantom,
        "phantom_unacknowledged": unacknowledged,
        "phantom_unknown": unknown,
        "duplicates": {
            "attempts_with_several_orders": several,
            "codes_claimed_twice": claimed_twice,
        },
        "quota": {
            "size": size,
            "sold_positions_in_orders": sold,
            "sold_per_availability": sold_api,
            "availability": availability,
            "oversold": oversold,
        },
    }


def summary_lines(acc: dict[str, Any]) -> list[str]:
    """The accounting in a few human lines (console and HTML)."""
    if "quota" not in acc:  # the accounting itself failed (API unreachable): say so, nothing else
        return ["accounting FAILED: " + "; ".join(acc.get("problems") or ["no figures"])]
    q = acc["quota"]
    lines = [
        f"orders in the database: {acc['orders_in_db']} {acc['orders_by_status']}",
        f"purchases the buyers completed: {acc['completed_by_buyers']}, matched: {acc['matched']}",
        f"missing (lost): {len(acc['missing'])}, phantom: {len(acc['phantom'])} "
        f"(unacknowledged {len(acc['phantom_unacknowledged'])}, "
        f"unknown {len(acc['phantom_unknown'])}), "
        f"duplicates: {len(acc['duplicates']['attempts_with_several_orders'])}",
        f"quota: {max(q['sold_positions_in_orders'], q['sold_per_availability'])} sold "
        f"of {q['size']}" + (" OVERSOLD" if q["oversold"] else " (not oversold)"),
    ]
    lines.append(
        "accounting OK" if acc["ok"] else "accounting FAILED: " + "; ".join(acc["problems"])
    )
    return lines
