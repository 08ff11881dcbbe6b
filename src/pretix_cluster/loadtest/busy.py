"""Which failures are "busy" and retried, which are final, and how long to back off.

pretix says "busy" in three ways: HTTP 409 with ``Retry-After: 5`` from the REST
API on a lock timeout; its async tasks (cart add, order placement) finishing
with "...the server was too busy. Please try again."; and the proxy in front
answering 429/503. A browser user would press the button again, so the buyer
retries those, with bounded exponential backoff (jittered, honouring
Retry-After), and counts every retry. Everything else is classified into a
short *kind* for the report; a purchase fails only when a step finally fails.

Retrying a POST is safe only when the server certainly did not act on it: a
busy answer, or a connection that was never established. A timeout or a 502
on the order placement might have created the order, so it is final (and the
accounting then explains the resulting "unacknowledged" order). The edge shows
its 503 page for pretix's 500 and its own 502/504 too; the status it replaced
(``X-Upstream-Status``) decides then, and a 503 without one (no web replica
reached) is busy. The waiting room's 503 never gets here: the buyer waits in
line as a browser does (:mod:`buyer`), and a buyer still held at its queue
timeout gives up (``queue_timeout``, final, like a person who leaves the line).
"""

from __future__ import annotations

import dataclasses
import random
import re

from pretix_cluster.loadtest.buyer import QueueTimeoutError, ShopError, SoldOutError
from pretix_cluster.loadtest.config import RetryPolicy

BUSY_STATUSES = frozenset({409, 429, 503})
GATEWAY_STATUSES = frozenset({502, 504})
_BUSY_TEXT = re.compile(r"too busy|try again later|server is overloaded", re.I)
_CONNECT_ERRORS = ("ConnectError", "ConnectTimeout", "PoolTimeout")
_READ_ERRORS = ("ReadTimeout", "WriteTimeout", "ReadError", "WriteError", "RemoteProtocolError")


@dataclasses.dataclass(frozen=True)
class Verdict:
    kind: str  # short and stable: it names a failure class in the report
    busy: bool  # a "busy" answer: retried and counted as a retry
    retryable: bool  # may be retried for this step at all


def classify_shop_error(
    err: ShopError, *, idempotent: bool, replaced: int | None = None
) -> Verdict:
    """Kind of a failed shop step; ``idempotent`` for GETs and re-submittable forms.

    ``replaced``: the upstream status behind the edge's 503 page, if it names one.
    """
    if isinstance(err, SoldOutError):
        return Verdict("sold_out", busy=False, retryable=False)
    if isinstance(err, QueueTimeoutError):  # its 503 is no busy answer: the line was too long
        return Verdict("queue_timeout", busy=False, retryable=False)
    text = err.message or ""
    status = replaced if err.status == 503 and replaced else err.status
    if status in BUSY_STATUSES:
        return Verdict(f"busy_http_{status}", busy=True, retryable=True)
    if _BUSY_TEXT.search(text):
        return Verdict("busy_task", busy=True, retryable=True)
    if text.startswith(_CONNECT_ERRORS):
        return Verdict("connect_error", busy=False, retryable=True)
    if text.startswith(_READ_ERRORS):
        return Verdict("timeout", busy=False, retryable=idempotent)
    if "async task not ready" in text:
        return Verdict("task_timeout", busy=False, retryable=False)
    if status in GATEWAY_STATUSES:
        return Verdict(f"gateway_{status}", busy=False, retryable=idempotent)
    if status is not None and status >= 500:
        return Verdict(f"http_{status}", busy=False, retryable=idempotent)
    if status is not None:
        return Verdict(f"http_{status}", busy=False, retryable=False)
    return Verdict(f"{err.step}_error", busy=False, retryable=False)


def classify_api_answer(status: int | None, text: str, exc_name: str | None = None) -> Verdict:
    """Kind of a failed ``POST /orders/``. With an idempotency key every retry is safe."""
    if exc_name is not None:
        if exc_name in _CONNECT_ERRORS:
            return Verdict("connect_error", busy=False, retryable=True)
        return Verdict("timeout", busy=False, retryable=True)
    assert status is not None
    if status in BUSY_STATUSES or _BUSY_TEXT.search(text or ""):
        return Verdict(f"busy_http_{status}", busy=True, retryable=True)
    if status == 400 and "quota" in (text or "").lower():
        return Verdict("sold_out", busy=False, retryable=False)
    if status in GATEWAY_STATUSES or status >= 500:
        return Verdict(f"http_{status}", busy=False, retryable=True)
    return Verdict(f"http_{status}", busy=False, retryable=False)


class Backoff:
    """Exponential backoff with full jitter, bounded per step and per purchase."""

    def __init__(self, policy: RetryPolicy, rng: random.Random | None = None):
        self.policy = policy
        self.rng = rng or random.Random()
        self.spent = 0.0

    def delay(self, try_number: int, retry_after: float | None) -> float | None:
        """Seconds to wait before try ``try_number + 1`` (1-based), or None when out of budget."""
        p = self.policy
        if try_number >= p.max_tries:
            return None
        ceiling = min(p.cap_s, p.base_s * 2 ** (try_number - 1))
        wait = self.rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, p.cap_s))
        if self.spent + wait > p.budget_s:
            return None
        self.spent += wait
        return wait


def parse_upstream_status(value: str | None) -> int | None:
    """The last status in nginx's ``$upstream_status`` ("502, 504" after a retry), if any."""
    found = re.findall(r"[0-9]{3}", value or "")
    return int(found[-1]) if found else None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form pretix uses)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
