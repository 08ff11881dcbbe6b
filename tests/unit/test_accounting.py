"""The no-loss check: the database's orders against what the buyers saw."""

from __future__ import annotations

from typing import Any

from pretix_cluster.loadtest.accounting import reconcile

RUN = "lt1130041500ab12"
ITEM = 7
A1, A2, A3 = "0123456789abcdef", "fedcba9876543210", "00112233445566aa"


def order(code: str, attempt: str | None, status: str = "n", item: int = ITEM) -> dict[str, Any]:
    """An order as pretix's REST API lists it (the fields the accounting reads)."""
    email = f"{RUN}-{attempt}@example.org" if attempt else "someone@example.org"
    return {"code": code, "status": status, "email": email, "positions": [{"item": item}]}


def completed(attempt: str, code: str) -> dict[str, Any]:
    return {"run": RUN, "attempt": attempt, "outcome": "completed", "code": code}


def failed(attempt: str, **extra: Any) -> dict[str, Any]:
    return {"run": RUN, "attempt": attempt, "outcome": "failed", **extra}


def availability(sold: int, size: int = 10) -> dict[str, Any]:
    return {"total_size": size, "pending_orders": sold, "paid_orders": 0, "available": True}


def account(orders, ledger, size: int = 10) -> dict[str, Any]:
    sold = sum(1 for o in orders if o["status"] in ("n", "p"))
    return reconcile(
        orders,
        availability(sold, size),
        run_id=RUN,
        event=RUN,
        item_id=ITEM,
        quota_size=size,
        ledger=ledger,
    )


def test_every_completed_purchase_in_the_database_is_ok():
    acc = account(
        [order("AAAAA", A1), order("BBBBB", A2, status="p")],
        [completed(A1, "AAAAA"), completed(A2, "BBBBB")],
    )
    assert acc["ok"] is True
    assert acc["problems"] == []
    assert acc["matched"] == 2
    assert acc["missing"] == [] and acc["phantom"] == []
    assert acc["quota"]["sold_positions_in_orders"] == 2
    assert acc["quota"]["oversold"] is False


def test_an_order_a_buyer_saw_but_the_database_lacks_is_lost():
    acc = account([order("AAAAA", A1)], [completed(A1, "AAAAA"), completed(A2, "BBBBB")])
    assert acc["ok"] is False
    assert acc["missing"] == ["BBBBB"]
    assert "lost" in acc["problems"][0]


def test_an_order_a_buyer_saw_that_is_now_canceled_fails():
    acc = account([order("AAAAA", A1, status="c")], [completed(A1, "AAAAA")])
    assert acc["ok"] is False
    assert acc["completed_but_not_live"] == ["AAAAA"]


def test_more_sold_than_the_quota_holds_is_oversold():
    acc = account(
        [order("AAAAA", A1), order("BBBBB", A2), order("CCCCC", A3)],
        [completed(A1, "AAAAA"), completed(A2, "BBBBB"), completed(A3, "CCCCC")],
        size=2,
    )
    assert acc["ok"] is False
    assert acc["quota"]["oversold"] is True
    assert acc["problems"] == ["quota oversold: 3 sold > 2"]


def test_exactly_the_quota_sold_is_not_oversold():
    acc = account(
        [order("AAAAA", A1), order("BBBBB", A2)],
        [completed(A1, "AAAAA"), completed(A2, "BBBBB")],
        size=2,
    )
    assert acc["ok"] is True
    assert acc["quota"]["oversold"] is False


def test_one_attempt_with_two_orders_is_a_duplicate():
    acc = account([order("AAAAA", A1), order("BBBBB", A1)], [completed(A1, "AAAAA")])
    assert acc["ok"] is False
    assert acc["duplicates"]["attempts_with_several_orders"] == {A1: ["AAAAA", "BBBBB"]}
    assert any(p.startswith("duplicates: 1 attempt(s)") for p in acc["problems"])


def test_one_code_claimed_by_two_attempts_is_a_duplicate():
    acc = account([order("AAAAA", A1)], [completed(A1, "AAAAA"), completed(A2, "AAAAA")])
    assert acc["ok"] is False
    assert acc["duplicates"]["codes_claimed_twice"] == ["AAAAA"]


def test_an_order_no_attempt_explains_is_an_unknown_phantom():
    acc = account([order("AAAAA", A1), order("ZZZZZ", None)], [completed(A1, "AAAAA")])
    assert acc["ok"] is False
    assert acc["phantom_unknown"] == ["ZZZZZ"]


def test_an_order_whose_buyer_saw_an_error_is_counted_but_no_fault():
    acc = account(
        [order("AAAAA", A1), order("BBBBB", A2)],
        [completed(A1, "AAAAA"), failed(A2, kind="timeout", step="confirm", message="ReadTimeout")],
    )
    assert acc["ok"] is True
    assert acc["phantom"] == ["BBBBB"]
    assert [p["code"] for p in acc["phantom_unacknowledged"]] == ["BBBBB"]
    assert acc["phantom_unacknowledged"][0]["step"] == "confirm"


def test_a_placed_order_whose_page_failed_counts_as_seen():
    acc = account(
        [order("AAAAA", A1)],
        [failed(A1, kind="http_502", step="order_page", code_hint="AAAAA")],
    )
    assert acc["ok"] is True
    assert acc["confirmed_order_page_failed"] == ["AAAAA"]
    assert acc["matched"] == 1


def test_a_placed_order_whose_page_failed_and_is_gone_is_lost():
    acc = account([], [failed(A1, kind="http_502", step="order_page", code_hint="AAAAA")])
    assert acc["ok"] is False
    assert acc["missing"] == ["AAAAA"]
