"""A browser-like ticket buyer for a pretix shop (httpx, synchronous).

Used step by step by the load test's shop flow (:mod:`flows`) and whole by the
integration tests. One purchase walks the same HTTP path as a browser with
JavaScript::

    s = ShopSession("http://127.0.0.1:8080", "demo", "tickets")
    s.open_event()                 # GET /demo/tickets/ (cookies, CSRF token, cart form)
    s.add_to_cart(item_id)         # POST cart/add ajax=1, poll ?async_id=..&ajax=1, GET cart page
    s.start_checkout()             # GET checkout/start -> first step (questions)
    s.fill_questions(email, name)  # POST checkout/questions/ -> GET next step
    s.choose_payment("manual")     # POST checkout/payment/ -> GET confirm (no-op if skipped)
    s.confirm_order()              # POST checkout/confirm/ ajax=1, poll the order placement
    code, secret = s.open_order()  # GET .../order/<code>/<secret>/ (following redirects)

Each step records its time in ``s.timings[<step name>]`` and raises
:class:`ShopError` (``.step``, ``.status``, ``.url``) when it fails;
:class:`SoldOutError` (a subclass) when pretix says the product is no longer
available. :func:`buy_ticket` runs all steps.

The edge's waiting room may hold any request back (HTTP 503 with
``X-Waiting-Room: <place in line>`` and ``Retry-After``). The buyer then does
what a browser does on that page: waits Retry-After seconds and sends the same
request again, until admitted or past ``queue_timeout`` (:class:`QueueTimeoutError`).
A held request never reached pretix, so repeating a POST is safe. That time is
the queue's, not the purchase's: it is kept in ``s.queue_seconds`` and left out
of every step's time (:meth:`ShopSession.served_time`).

Every request carries the session/CSRF cookies, ``Referer`` and ``Origin`` like a
browser, and POSTs include ``csrfmiddlewaretoken`` taken from the form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from pretix_cluster.daemons.nginx import POSITION_HEADER, WAITED_HEADER
from pretix_cluster.loadtest.forms import Form, error_messages, find_post_form

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) pretix-cluster-buyer/1.0"

STEP_EVENT_PAGE = "event_page"
STEP_CART_ADD = "cart_add"
STEP_CHECKOUT_START = "checkout_start"
STEP_QUESTIONS = "questions"
STEP_PAYMENT = "payment"
STEP_CONFIRM = "confirm"
STEP_ORDER_PAGE = "order_page"
STEPS = (
    STEP_EVENT_PAGE,
    STEP_CART_ADD,
    STEP_CHECKOUT_START,
    STEP_QUESTIONS,
    STEP_PAYMENT,
    STEP_CONFIRM,
    STEP_ORDER_PAGE,
)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
FIRST_POLL_DELAY_S = 0.1  # the page's JS checks after 100 ms, then every poll_interval
GATEWAY_RETRY_S = 1.0  # the page's JS also retries a poll that answered 5xx
QUEUE_WAIT_FLOOR_S = 0.5  # never poll the edge faster than this, whatever Retry-After says
QUEUE_WAIT_CAP_S = 30.0  # nor wait longer between tries than this
_AJAX = {"X-Requested-With": "XMLHttpRequest"}
_AJAX_POLL = {**_AJAX, "Accept": "application/json"}

_ORDER_PATH_RE = re.compile(r"/order/(?P<code>[A-Z0-9]+)/(?P<secret>[a-z0-9]+)/?$")
_CHECKOUT_STEP_RE = re.compile(r"/checkout/(?P<step>[a-z_]+)/?$")
_NAME_PART_RE = re.compile(r"attendee_name_parts_(\d+)")
_SOLD_OUT_MARKERS = ("no longer available", "sold out", "not available for sale")


class ShopError(Exception):
    """A purchase step failed. ``step`` is one of :data:`STEPS`."""

    def __init__(
        self, step: str, message: str, *, status: int | None = None, url: str | None = None
    ):
        self.step = step
        self.message = message
        self.status = status
        self.url = url
        extra = ", ".join(x for x in (f"HTTP {status}" if status else "", url or "") if x)
        super().__init__(f"[{step}] {message}" + (f" ({extra})" if extra else ""))


class SoldOutError(ShopError):
    """pretix refused the product as unavailable (quota exhausted or sale closed)."""


class QueueTimeoutError(ShopError):
    """The waiting room still held the buyer when the session's queue timeout ran out."""


@dataclasses.dataclass
class PurchaseResult:
    order_code: str
    order_secret: str
    order_url: str
    timings: dict[str, float]
    total_seconds: float  # the admitted buyer's purchase: the queue's wait left out
    queue_seconds: float = 0.0  # held in the waiting room


@dataclasses.dataclass(frozen=True)
class Hold:
    """The waiting room held a request back: the buyer's place in line, how long to wait."""

    position: int | None
    wait_s: float


def waiting_room_hold(r: httpx.Response) -> Hold | None:
    """The waiting room's answer in ``r``, or None for any other answer (a 503 too)."""
    if r.status_code != 503 or POSITION_HEADER not in r.headers:
        return None
    position = r.headers[POSITION_HEADER].strip()
    return Hold(
        position=int(position) if position.isdigit() else None,
        wait_s=_queue_wait(r.headers.get("retry-after")),
    )


def _queue_wait(retry_after: str | None) -> float:
    """Retry-After's seconds within the floor and the cap; the floor when it names none."""
    try:
        seconds = float(retry_after or "")
    except ValueError:
        seconds = QUEUE_WAIT_FLOOR_S
    return min(QUEUE_WAIT_CAP_S, max(QUEUE_WAIT_FLOOR_S, seconds))


def refusal(step: str, message: str, url: str | None, status: int | None = None) -> ShopError:
    """The error for a step pretix refused: :class:`SoldOutError` when its message says so."""
    sold_out = any(m in (message or "").lower() for m in _SOLD_OUT_MARKERS)
    return (SoldOutError if sold_out else ShopError)(
        step, message or "failed", status=status, url=url
    )


def question_answers(form: Form, email: str, name: str) -> dict[str, str]:
    """What a buyer types into the questions step: contact e-mail (twice) and attendee name.

    Field names carry a position prefix (``1-attendee_name_parts_0``); a name scheme
    with given and family name gets the name split at its first space.
    """
    given, _, family = name.strip().partition(" ")
    parts = {0: given or name, 1: family or given or name}
    answers: dict[str, str] = {}
    for field in form.names:
        base = field.split("-", 1)[-1]
        part = _NAME_PART_RE.fullmatch(base)
        if base in ("email", "email_repeat"):
            answers[field] = email
        elif part and form.kinds.get(field) != "hidden":  # hidden: the name scheme marker
            index = int(part.group(1))
            if index in parts:
                answers[field] = parts[index]
        elif base == "attendee_name":
            answers[field] = name
    return answers


def confirmation_checkboxes(form: Form) -> dict[str, str]:
    """Ticks every ``confirm_*`` checkbox of the confirm step (terms, privacy)."""
    return {
        n: "yes" for n in form.names if n.startswith("confirm_") and form.kinds.get(n) == "checkbox"
    }


def order_of_url(url: str) -> tuple[str, str] | None:
    """(code, secret) of an order page URL, None for any other page."""
    m = _ORDER_PATH_RE.search(urlsplit(url).path)
    return (m.group("code"), m.group("secret")) if m else None


class ShopSession:
    """One buyer (own cookie jar). Call the step methods in order; see the module doc."""

    def __init__(
        self,
        base_url: str,
        organizer: str,
        event: str,
        *,
        timeout: float = 30.0,
        poll_interval: float = 0.25,
        poll_timeout: float = 120.0,
        queue_timeout: float = 600.0,
        client: httpx.Client | None = None,
        verify: ssl.SSLContext | bool = True,
    ):
        self.base_url = base_url.rstrip("/")
        self.event_url = f"{self.base_url}/{organizer}/{event}/"
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self.queue_timeout = queue_timeout
        self._own_client = client is None
        self.client = client or httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            verify=verify,
        )
        u = urlsplit(self.base_url)
        self.origin = f"{u.scheme}://{u.netloc}"  # pretix checks it against the Host it got
        self.timings: dict[str, float] = {}
        self.page_url: str | None = None
        self.page_html: str = ""
        self.next_url: str | None = None
        self.order_code: str | None = None
        self.order_secret: str | None = None
        self.queue_seconds = 0.0  # held by the waiting room, over the whole session
        self.queue_holds = 0  # answers that held a request back (each was sent again)
        self.queue_position: int | None = None  # the place in line when first held

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> ShopSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the steps

    def open_event(self) -> None:
        """GET the event page: session + CSRF cookies and the add-to-cart form."""
        with self._timed(STEP_EVENT_PAGE):
            self.page_url = None
            self.open_page(STEP_EVENT_PAGE, self.event_url)

    def add_to_cart(self, item_id: int, quantity: int = 1) -> None:
        """POST cart/add (as the page's JavaScript does), poll the task, then load the cart page."""
        with self._timed(STEP_CART_ADD):
            field = f"item_{item_id}"
            form = self._cart_form(item_id, field)
            self.next_url = self._run_async_task(STEP_CART_ADD, form, {field: str(quantity)})
            self.open_page(STEP_CART_ADD, self.next_url)

    def start_checkout(self) -> str:
        """GET checkout/start and follow it to the first checkout step; returns that step's name."""
        with self._timed(STEP_CHECKOUT_START):
            self.open_page(STEP_CHECKOUT_START, f"{self.event_url}checkout/start")
            return self.current_checkout_step() or ""

    def fill_questions(self, email: str, name: str) -> None:
        """Fill the questions step (contact e-mail, attendee name) and go to the next step."""
        with self._timed(STEP_QUESTIONS):
            self._expect_checkout_step(STEP_QUESTIONS, "questions")
            form = self._post_form(
                STEP_QUESTIONS, lambda f: "csrfmiddlewaretoken" in f.names and "email" in f.names
            )
            self._submit_step(STEP_QUESTIONS, form, question_answers(form, email, name))

    def choose_payment(self, provider: str = "manual") -> None:
        """Select a payment provider on the payment step (no-op when pretix skipped that step)."""
        with self._timed(STEP_PAYMENT):
            if self.current_checkout_step() != "payment":
                return
            form = self._post_form(STEP_PAYMENT, lambda f: "payment" in f.names)
            offered = form.options.get("payment", [])
            if provider not in offered:
                raise ShopError(
                    STEP_PAYMENT,
                    f"payment provider {provider!r} not offered (offered: {offered})",
                    url=self.page_url,
                )
            self._submit_step(STEP_PAYMENT, form, {"payment": provider})

    def confirm_order(self) -> str:
        """POST the confirm step (ajax) and poll the order placement; returns the redirect URL."""
        with self._timed(STEP_CONFIRM):
            self._expect_checkout_step(STEP_CONFIRM, "confirm")
            form = self._post_form(
                STEP_CONFIRM,
                lambda f: (
                    "csrfmiddlewaretoken" in f.names and "/checkout/confirm" in self._action_of(f)
                ),
            )
            self.next_url = self._run_async_task(STEP_CONFIRM, form, confirmation_checkboxes(form))
            self._refuse_if_sent_back_to_checkout(self.next_url)
            return self.next_url

    def open_order(self) -> tuple[str, str]:
        """Follow the order placement's redirect to ``order/<code>/<secret>/``: (code, secret)."""
        with self._timed(STEP_ORDER_PAGE):
            if not self.next_url:
                raise ShopError(STEP_ORDER_PAGE, "no order redirect (confirm_order first)")
            self.open_page(STEP_ORDER_PAGE, self.next_url)
            order = order_of_url(self.page_url or "")
            if order is None:
                raise ShopError(STEP_ORDER_PAGE, "did not land on an order page", url=self.page_url)
            self.order_code, self.order_secret = order
            return order

    def reload_checkout_step(self, step: str, page: str) -> None:
        """Load checkout step ``page`` again, as a browser shows a refused form before a retry."""
        self.open_page(step, f"{self.event_url}checkout/{page}/")

    def current_checkout_step(self) -> str | None:
        m = _CHECKOUT_STEP_RE.search(urlsplit(self.page_url or "").path)
        return m.group("step") if m else None

    # -- pages and forms

    def open_page(self, step: str, url: str) -> httpx.Response:
        """GET ``url`` following redirects like a browser; the result becomes the current page."""
        url = self._absolute(url)
        for _ in range(MAX_REDIRECTS + 1):
            r = self._request(step, "GET", url)
            if r.status_code in REDIRECTS:
                url = urljoin(url, r.headers["location"])
                continue
            if r.status_code != 200:
                raise ShopError(
                    step,
                    f"unexpected response: {error_messages(r.text) or r.text[:200]!r}",
                    status=r.status_code,
                    url=url,
                )
            self.page_url = str(r.url)
            self.page_html = r.text
            return r
        raise ShopError(step, "too many redirects", url=url)

    def _cart_form(self, item_id: int, field: str) -> Form:
        """The event page's add-to-cart form, if it still offers the item's field."""
        form = find_post_form(self.page_html, lambda f: "cart/add" in f.action)
        if form is None:
            raise SoldOutError(
                STEP_CART_ADD,
                "no add-to-cart form on the event page (sold out or not on sale?)",
                url=self.page_url,
            )
        if field not in form.names:
            raise SoldOutError(
                STEP_CART_ADD,
                f"item {item_id} cannot be added (sold out or not on sale?)",
                url=self.page_url,
            )
        return form

    def _post_form(self, step: str, predicate: Callable[[Form], bool]) -> Form:
        form = find_post_form(self.page_html, predicate)
        if form is None:
            raise ShopError(
                step,
                f"form not found on page: {error_messages(self.page_html) or 'no error shown'}",
                url=self.page_url,
            )
        return form

    def _expect_checkout_step(self, step: str, page: str) -> None:
        if self.current_checkout_step() != page:
            raise ShopError(
                step, f"expected the {page} step, got {self.page_url}", url=self.page_url
            )

    def _submit_step(self, step: str, form: Form, overrides: dict[str, str]) -> None:
        """POST a checkout step; pretix redirects to the next step, or answers the form again."""
        before = self.page_url
        r = self._request(step, "POST", self._action_of(form), form=form.data(overrides))
        if r.status_code not in (301, 302, 303):
            msg = error_messages(r.text) or f"step was not accepted: {r.text[:200]!r}"
            raise refusal(step, msg, before, r.status_code)
        self.open_page(step, urljoin(before or "", r.headers["location"]))
        if self.page_url == before:  # redirected back to the same step: refused
            raise refusal(step, error_messages(self.page_html) or "step did not advance", before)

    def _refuse_if_sent_back_to_checkout(self, url: str) -> None:
        """pretix sends a buyer whose order it did not place back to the checkout, with why."""
        if "/checkout/" in urlsplit(url).path:
            self.open_page(STEP_CONFIRM, url)
            raise refusal(
                STEP_CONFIRM, error_messages(self.page_html) or "order was not placed", url
            )

    # -- async tasks (cart add, order placement)

    def _run_async_task(self, step: str, form: Form, overrides: dict[str, str]) -> str:
        """POST an async-task form (ajax=1), poll until pretix has a result; return its redirect."""
        url = self._action_of(form)
        data = form.data({**overrides, "ajax": "1"})
        r = self._request(step, "POST", url, form=data, headers=_AJAX)
        if r.status_code != 200:
            raise ShopError(
                step,
                f"POST failed: {error_messages(r.text) or r.text[:200]!r}",
                status=r.status_code,
                url=url,
            )
        deadline = self.served_time() + self.poll_timeout  # pretix's time: not the queue's
        check_url: str | None = None
        delay = FIRST_POLL_DELAY_S
        while True:
            answer = _task_answer(step, r)
            if answer.get("redirect") and answer.get("ready", True):
                return self._task_redirect(step, answer, str(r.url))
            check_url = answer.get("check_url") or check_url
            if not check_url:
                raise ShopError(step, f"no check_url in answer: {answer!r}", url=str(r.url))
            if self.served_time() > deadline:
                raise ShopError(
                    step, f"async task not ready after {self.poll_timeout}s", url=check_url
                )
            time.sleep(delay)
            delay = self.poll_interval
            r = self._poll_task(step, self._absolute(check_url), deadline)

    def _task_redirect(self, step: str, answer: dict[str, Any], url: str) -> str:
        if answer.get("success") is False:
            raise refusal(step, answer.get("message") or "task failed", url=url)
        return self._absolute(answer["redirect"])

    def _poll_task(self, step: str, poll_url: str, deadline: float) -> httpx.Response:
        """One check of the task's state; a 5xx is retried each second until the deadline."""
        r = self._request(step, "GET", poll_url, headers=_AJAX_POLL)
        while r.status_code >= 500 and self.served_time() < deadline:
            time.sleep(GATEWAY_RETRY_S)
            r = self._request(step, "GET", poll_url, headers=_AJAX_POLL)
        if r.status_code != 200:
            raise ShopError(
                step, f"poll failed: {r.text[:200]!r}", status=r.status_code, url=poll_url
            )
        return r

    # -- HTTP

    def _absolute(self, url: str) -> str:
        return urljoin(self.page_url or self.event_url, url)

    def _action_of(self, form: Form) -> str:
        return self._absolute(form.action or self.page_url or "")

    def _request(self, step: str, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        form_data = kw.pop("form", None)
        if form_data is not None:  # ordered, repeatable fields, urlencoded like a browser
            kw["content"] = urlencode(form_data).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.page_url:
            headers.setdefault("Referer", self.page_url)
        if method == "POST":
            headers.setdefault("Origin", self.origin)
        while True:
            sent_at = time.perf_counter()
            try:
                r = self.client.request(method, url, headers=headers, **kw)
            except httpx.HTTPError as e:
                raise ShopError(step, f"{type(e).__name__}: {e}", url=url) from e
            hold = waiting_room_hold(r)
            if hold is None:
                self._count_wait_at_the_door(r)
                return r
            self._wait_in_line(step, url, hold, sent_at)

    def _count_wait_at_the_door(self, r: httpx.Response) -> None:
        """nginx held this request near the front of the line until a place was free, then
        passed it to pretix: that time was the queue's, not the purchase's."""
        waited = r.headers.get(WAITED_HEADER)
        if waited is None:
            return
        try:
            self.queue_seconds += max(0.0, float(waited))
        except ValueError:
            return
        self.queue_holds += 1

    def _wait_in_line(self, step: str, url: str, hold: Hold, sent_at: float) -> None:
        """Wait as the held page asks before the same request goes again (cookies kept by
        the client's jar: the ticket nginx set). The held request's own round trip counts
        as queue time too: pretix never saw it."""
        self.queue_holds += 1
        if self.queue_position is None:
            self.queue_position = hold.position
        try:
            waited = self.queue_seconds + time.perf_counter() - sent_at
            if waited + hold.wait_s > self.queue_timeout:
                raise QueueTimeoutError(
                    step,
                    f"still held by the waiting room after {waited:.1f} s (place "
                    f"{hold.position} in line): gave up at the queue timeout of "
                    f"{self.queue_timeout:g} s",
                    status=503,
                    url=url,
                )
            time.sleep(hold.wait_s)
        finally:  # also when the buyer is stopped while waiting: the wait was the queue's
            self.queue_seconds += time.perf_counter() - sent_at

    def served_time(self) -> float:
        """A clock (seconds) without the time the waiting room held the buyer: step times
        and task deadlines are pretix's, not the queue's (read between requests)."""
        return time.perf_counter() - self.queue_seconds

    @contextlib.contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        t0 = self.served_time()
        try:
            yield
        finally:
            self.timings[step] = self.served_time() - t0


def _task_answer(step: str, r: httpx.Response) -> dict[str, Any]:
    try:
        return r.json()
    except ValueError as e:
        raise ShopError(
            step, f"non-JSON answer: {r.text[:200]!r}", status=r.status_code, url=str(r.url)
        ) from e


def buy_ticket(
    base_url: str,
    organizer: str,
    event: str,
    item_id: int,
    *,
    email: str,
    name: str,
    timeout: float = 30.0,
    payment_provider: str = "manual",
    client: httpx.Client | None = None,
    verify: ssl.SSLContext | bool = True,
) -> PurchaseResult:
    """Buy one ticket like a browser does; returns the order code/secret and per-step timings.

    Raises :class:`ShopError` (or :class:`SoldOutError`) naming the failed step.
    """
    with ShopSession(
        base_url, organizer, event, timeout=timeout, client=client, verify=verify
    ) as s:
        t0 = s.served_time()
        s.open_event()
        s.add_to_cart(item_id)
        s.start_checkout()
        s.fill_questions(email, name)
        s.choose_payment(payment_provider)
        s.confirm_order()
        code, secret = s.open_order()
        return PurchaseResult(
            order_code=code,
            order_secret=secret,
            order_url=s.page_url or "",
            timings=dict(s.timings),
            total_seconds=s.served_time() - t0,
            queue_seconds=s.queue_seconds,
        )
