"""Which failures the buyers retry, which are final, and how long they back off."""

from __future__ import annotations

import random

import pytest

from pretix_cluster.loadtest.busy import (
    Backoff,
    classify_api_answer,
    classify_shop_error,
    parse_retry_after,
    parse_upstream_status,
)
from pretix_cluster.loadtest.buyer import (
    STEP_CART_ADD,
    STEP_CONFIRM,
    STEP_EVENT_PAGE,
    QueueTimeoutError,
    ShopError,
    refusal,
)
from pretix_cluster.loadtest.config import RetryPolicy

# pretix's own texts: error_messages of pretix/base/services/cart.py and orders.py, read from
# the pretix image (pretix 2026.8.0) of the dev cluster
BUSY_TASK = (
    "We were not able to process your request completely as the server was too busy. "
    "Please try again."
)
SOLD_OUT_TEXTS = (
    "Some of the products you selected are no longer available. Please see below for details.",
    "Some of the products you selected were no longer available in the quantity you selected. "
    "Please see below for details.",
    "You selected a product which is not available for sale.",
)


def verdict(err: ShopError, idempotent: bool = True) -> tuple[str, bool, bool]:
    v = classify_shop_error(err, idempotent=idempotent)
    return v.kind, v.busy, v.retryable


def test_a_task_that_pretix_found_too_busy_is_retried():
    err = refusal(STEP_CONFIRM, BUSY_TASK, url="/demo/tickets/checkout/confirm/")
    assert verdict(err, idempotent=False) == ("busy_task", True, True)


@pytest.mark.parametrize("status", [409, 429, 503])
def test_busy_statuses_are_retried_even_on_a_post(status):
    err = ShopError(STEP_CONFIRM, "POST failed: ''", status=status)
    assert verdict(err, idempotent=False) == (f"busy_http_{status}", True, True)


@pytest.mark.parametrize("text", SOLD_OUT_TEXTS)
def test_a_sold_out_product_is_final(text):
    err = refusal(STEP_CART_ADD, text, url="/demo/tickets/")
    assert verdict(err) == ("sold_out", False, False)


def test_a_buyer_who_gave_up_on_the_waiting_room_is_final_not_busy():
    err = QueueTimeoutError(STEP_EVENT_PAGE, "still held by the waiting room", status=503)
    assert verdict(err) == ("queue_timeout", False, False)


def test_a_connection_never_made_is_retried_a_timeout_only_when_idempotent():
    refused = ShopError(STEP_CONFIRM, "ConnectError: [Errno 111] Connection refused")
    assert verdict(refused, idempotent=False) == ("connect_error", False, True)
    timeout = ShopError(STEP_CONFIRM, "ReadTimeout: timed out")
    assert verdict(timeout, idempotent=False) == ("timeout", False, False)
    assert verdict(timeout, idempotent=True) == ("timeout", False, True)


def test_a_gateway_error_on_the_order_placement_is_final():
    err = ShopError(STEP_CONFIRM, "POST failed: 'Bad Gateway'", status=502)
    assert verdict(err, idempotent=False) == ("gateway_502", False, False)
    assert verdict(err, idempotent=True) == ("gateway_502", False, True)


def test_other_failures_are_named_and_final():
    assert verdict(ShopError(STEP_CONFIRM, "async task not ready after 120s")) == (
        "task_timeout",
        False,
        False,
    )
    assert verdict(ShopError(STEP_CONFIRM, "x", status=500), idempotent=False) == (
        "http_500",
        False,
        False,
    )
    assert verdict(ShopError(STEP_CONFIRM, "x", status=403)) == ("http_403", False, False)
    assert verdict(ShopError(STEP_CONFIRM, "form not found on page")) == (
        "confirm_error",
        False,
        False,
    )


def test_api_answers():
    def kind(status, text="", exc=None):
        v = classify_api_answer(status, text, exc)
        return v.kind, v.busy, v.retryable

    assert kind(None, exc="ConnectError") == ("connect_error", False, True)
    assert kind(None, exc="ReadTimeout") == ("timeout", False, True)  # the idempotency key
    assert kind(409, '{"detail": "..."}') == ("busy_http_409", True, True)
    assert kind(400, '{"positions": [{"item": ["There is not enough quota available"]}]}') == (
        "sold_out",
        False,
        False,
    )
    assert kind(502) == ("http_502", False, True)
    assert kind(400, '{"email": ["Enter a valid email address."]}') == ("http_400", False, False)


def test_backoff_grows_honours_retry_after_and_stops_at_its_budget():
    policy = RetryPolicy(max_tries=4, base_s=1.0, cap_s=4.0, budget_s=6.0)
    backoff = Backoff(policy, random.Random(1))
    first = backoff.delay(1, None)
    assert first is not None and 0.5 <= first <= 1.0
    assert backoff.delay(2, 5.0) == 4.0  # Retry-After, but never beyond the cap
    assert backoff.delay(3, None) is None  # at least 2 s more would exceed the 6 s budget
    assert backoff.spent == pytest.approx(first + 4.0)
    assert Backoff(policy).delay(4, None) is None  # out of tries


def test_retry_after_parsing():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


@pytest.mark.parametrize(
    ("header", "kind", "retried_on_a_post"),
    [
        ("500", "http_500", False),
        ("502", "gateway_502", False),
        ("502, 504", "gateway_504", False),
        ("503", "busy_http_503", True),
        (None, "busy_http_503", True),  # no web replica reached: nothing acted
    ],
)
def test_the_edges_503_page_is_judged_by_the_answer_it_replaced(header, kind, retried_on_a_post):
    err = ShopError(STEP_CONFIRM, "POST failed: ''", status=503)
    replaced = parse_upstream_status(header)
    v = classify_shop_error(err, idempotent=False, replaced=replaced)
    assert (v.kind, v.retryable) == (kind, retried_on_a_post)
    assert classify_shop_error(err, idempotent=True, replaced=replaced).retryable
