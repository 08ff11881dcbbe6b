"""A browser-like ticket buyer for a pretix shop (httpx, synchronous).

Used by the integration tests and, step by step, by the Locust load test.

One purchase walks the same HTTP path as a browser with JavaScript::

    s = ShopSession("http://127.0.0.1:8080", "demo", "tickets")
    s.open_event()                 # GET /demo/tickets/ (cookies, CSRF token, cart form)
    s.add_to_cart(item_id)         # POST cart/add ajax=1, poll ?async_id=..&ajax=1, GET cart page
    s.start_checkout()             # GET checkout/start -> first step (questions)
    s.fill_questions(email, name)  # POST checkout/questions/ -> GET next step
    s.choose_payment("manual")     # POST checkout/payment/ -> GET confirm (no-op if skipped)
    s.confirm_order()              # POST checkout/confirm/ ajax=1, poll the order placement
    code, secret = s.open_order()  # GET .../order/<code>/<secret>/ (following redirects)

Each step records its wall time in ``s.timings[<step name>]`` and raises
:class:`ShopError` (``.step``, ``.status``, ``.url``) when it fails;
:class:`SoldOutError` (a subclass) when pretix says the product is no longer
available.  :func:`buy_ticket` runs all steps.  :func:`find_order` reads an
order back through the REST API.

Every request carries the session/CSRF cookies, ``Referer`` and ``Origin`` like a
browser, and POSTs include ``csrfmiddlewaretoken`` taken from the form.
"""

from __future__ import annotations

import dataclasses
import re
import time
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) pretix-cluster-shopclient/1.0"

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

_ORDER_PATH_RE = re.compile(r"/order/(?P<code>[A-Z0-9]+)/(?P<secret>[a-z0-9]+)/?$")
_CHECKOUT_STEP_RE = re.compile(r"/checkout/(?P<step>[a-z_]+)/?$")
_SOLD_OUT_MARKERS = ("no longer available", "sold out", "not available for sale")


class ShopError(Exception):
    """A purchase step failed.  ``step`` is one of :data:`STEPS`."""

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


@dataclasses.dataclass
class PurchaseResult:
    order_code: str
    order_secret: str
    order_url: str
    timings: dict[str, float]
    total_seconds: float


# --------------------------------------------------------------------------- HTML helpers


class _Form:
    def __init__(self, attrs: dict[str, str]):
        self.attrs = attrs
        self.action = attrs.get("action") or ""
        self.method = (attrs.get("method") or "get").lower()
        self.fields: list[tuple[str, str]] = []  # successful controls, document order
        self.names: list[str] = []  # every named control (incl. unchecked boxes)
        self.kinds: dict[str, str] = {}  # name -> input type / "select" / "textarea"
        self.options: dict[str, list[str]] = {}  # radio/select name -> values

    def value(self, name: str) -> str | None:
        for k, v in self.fields:
            if k == name:
                return v
        return None

    def data(self, overrides: dict[str, str]) -> list[tuple[str, str]]:
        """Form data as a browser would submit it, with ``overrides`` replacing/adding values."""
        out = [(k, v) for k, v in self.fields if k not in overrides]
        out += [(k, v) for k, v in overrides.items() if v is not None]
        return out


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._form: _Form | None = None
        self._select: tuple[str, list[tuple[str, bool]]] | None = None
        self._option: list[Any] | None = None
        self._textarea: list[Any] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = _Form(a)
            self.forms.append(self._form)
            return
        f = self._form
        if f is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            typ = a.get("type", "text").lower()
            f.names.append(name)
            f.kinds[name] = typ
            if typ in ("submit", "button", "image", "reset", "file"):
                return
            if typ in ("checkbox", "radio"):
                f.options.setdefault(name, []).append(a.get("value", "on"))
                if "checked" in a:
                    f.fields.append((name, a.get("value", "on")))
                return
            if "disabled" in a:
                return
            f.fields.append((name, a.get("value", "")))
        elif tag == "select" and name:
            f.names.append(name)
            f.kinds[name] = "select"
            self._select = (name, [])
        elif tag == "option" and self._select is not None:
            self._option = [a.get("value"), "selected" in a, []]
        elif tag == "textarea" and name:
            f.names.append(name)
            f.kinds[name] = "textarea"
            self._textarea = [name, []]

    def handle_data(self, data):
        if self._option is not None:
            self._option[2].append(data)
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag):
        if tag == "option" and self._option is not None and self._select is not None:
            value, selected, text = self._option
            self._select[1].append(
                (value if value is not None else "".join(text).strip(), selected)
            )
            self._option = None
        elif tag == "select" and self._select is not None:
            name, opts = self._select
            if self._form is not None:
                self._form.options[name] = [v for v, _ in opts]
                chosen = [v for v, sel in opts if sel] or [v for v, _ in opts[:1]]
                for v in chosen:
                    self._form.fields.append((name, v))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            if self._form is not None:
                self._form.fields.append((self._textarea[0], "".join(self._textarea[1])))
            self._textarea = None
        elif tag == "form":
            self._form = None


def parse_forms(html: str) -> list[_Form]:
    p = _FormParser()
    p.feed(html)
    p.close()
    return p.forms


def error_messages(html: str) -> str:
    """Visible error texts of a pretix page (alert boxes and field errors), joined."""
    found = re.findall(r'<div[^>]*class="[^"]*alert-danger[^"]*"[^>]*>(.*?)</div>', html, re.S)
    found += (
        re.findall(
            r'<(?:div|span|p)[^>]*class="[^"]*(?:help-block|invalid-feedback)[^"]*"[^>]*>(.*?)</(?:div|span|p)>',
            html,
            re.S,
        )
        if not found
        else []
    )
    texts = [" ".join(unescape(re.sub(r"<[^>]+>", " ", f)).split()) for f in found]
    return " | ".join(t for t in texts if t)[:500]


# --------------------------------------------------------------------------- the buyer


class ShopSession:
    """One buyer (own cookie jar).  Call the step methods in order; see module doc."""

    def __init__(
        self,
        base_url: str,
        organizer: str,
        event: str,
        *,
        timeout: float = 30.0,
        poll_interval: float = 0.25,
        poll_timeout: float = 120.0,
        client: httpx.Client | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.organizer = organizer
        self.event = event
        self.event_url = f"{self.base_url}/{organizer}/{event}/"
        self.poll_interval = poll_interval
        self.poll_timeout = poll_timeout
        self._own_client = client is None
        self.client = client or httpx.Client(
            timeout=timeout, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )
        u = urlsplit(self.base_url)
        self.origin = f"{u.scheme}://{u.netloc}"
        self.timings: dict[str, float] = {}
        self.page_url: str | None = None
        self.page_html: str = ""
        self.next_url: str | None = None
        self.order_code: str | None = None
        self.order_secret: str | None = None

    # -- context manager
    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> ShopSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- low level
    def _abs(self, url: str) -> str:
        return urljoin(self.page_url or self.event_url, url)

    def _request(self, step: str, method: str, url: str, **kw) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        form_data = kw.pop("form", None)
        if form_data is not None:  # ordered, repeatable fields, urlencoded like a browser
            kw["content"] = urlencode(form_data).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.page_url:
            headers.setdefault("Referer", self.page_url)
        if method == "POST":
            headers.setdefault("Origin", self.origin)
        try:
            return self.client.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as e:
            raise ShopError(step, f"{type(e).__name__}: {e}", url=url) from e

    def _get_page(self, step: str, url: str, max_redirects: int = 10) -> httpx.Response:
        """GET ``url`` following redirects like a browser; the result becomes the current page."""
        url = self._abs(url)
        for _ in range(max_redirects + 1):
            r = self._request(step, "GET", url)
            if r.status_code in (301, 302, 303, 307, 308):
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

    def _form(self, step: str, predicate) -> _Form:
        for f in parse_forms(self.page_html):
            if f.method == "post" and predicate(f):
                return f
        raise ShopError(
            step,
            f"form not found on page: {error_messages(self.page_html) or 'no error shown'}",
            url=self.page_url,
        )

    def _post_form(self, step: str, form: _Form, overrides: dict[str, str]) -> httpx.Response:
        return self._request(
            step, "POST", self._abs(form.action or self.page_url), form=form.data(overrides)
        )

    def _raise_for_message(
        self, step: str, message: str, url: str | None, status: int | None = None
    ):
        cls = (
            SoldOutError
            if any(m in (message or "").lower() for m in _SOLD_OUT_MARKERS)
            else ShopError
        )
        raise cls(step, message or "failed", status=status, url=url)

    def _async_post(self, step: str, form: _Form, overrides: dict[str, str]) -> str:
        """POST an async-task form (ajax=1), poll until pretix has a result; return its redirect."""
        data = dict(overrides)
        data["ajax"] = "1"
        url = self._abs(form.action or self.page_url)
        r = self._request(
            step, "POST", url, form=form.data(data), headers={"X-Requested-With": "XMLHttpRequest"}
        )
        if r.status_code != 200:
            raise ShopError(
                step,
                f"POST failed: {error_messages(r.text) or r.text[:200]!r}",
                status=r.status_code,
                url=url,
            )
        deadline = time.monotonic() + self.poll_timeout
        ajax_headers = {"X-Requested-With": "XMLHttpRequest", "Accept": "application/json"}
        check_url: str | None = None
        delay = 0.1  # the page's JS checks after 100 ms, then every 250 ms
        while True:
            try:
                d = r.json()
            except ValueError as e:
                raise ShopError(
                    step, f"non-JSON answer: {r.text[:200]!r}", status=r.status_code, url=str(r.url)
                ) from e
            if d.get("redirect") and d.get("ready", True):
                if d.get("success") is False:
                    self._raise_for_message(step, d.get("message") or "task failed", url=str(r.url))
                return self._abs(d["redirect"])
            check_url = d.get("check_url") or check_url
            if not check_url:
                raise ShopError(step, f"no check_url in answer: {d!r}", url=str(r.url))
            if time.monotonic() > deadline:
                raise ShopError(
                    step, f"async task not ready after {self.poll_timeout}s", url=check_url
                )
            time.sleep(delay)
            delay = self.poll_interval
            poll_url = self._abs(check_url)
            r = self._request(step, "GET", poll_url, headers=ajax_headers)
            while (
                r.status_code >= 500 and time.monotonic() < deadline
            ):  # the JS retries on 5xx as well
                time.sleep(1.0)
                r = self._request(step, "GET", poll_url, headers=ajax_headers)
            if r.status_code != 200:
                raise ShopError(
                    step, f"poll failed: {r.text[:200]!r}", status=r.status_code, url=poll_url
                )

    def _timed(self, step: str):
        session = self

        class _T:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                session.timings[step] = time.perf_counter() - self.t0

        return _T()

    # -- steps
    def open_event(self) -> None:
        """GET the event page: session + CSRF cookies and the add-to-cart form."""
        with self._timed(STEP_EVENT_PAGE):
            self.page_url = None
            self._get_page(STEP_EVENT_PAGE, self.event_url)

    def add_to_cart(self, item_id: int, quantity: int = 1, *, view_cart: bool = True) -> None:
        """POST cart/add (as the page's JavaScript does), poll the task, then load the cart page."""
        with self._timed(STEP_CART_ADD):
            field = f"item_{item_id}"
            try:
                form = self._form(STEP_CART_ADD, lambda f: "cart/add" in f.action)
            except ShopError as e:
                raise SoldOutError(
                    STEP_CART_ADD,
                    "no add-to-cart form on the event page (sold out or not on sale?)",
                    url=self.page_url,
                ) from e
            if field not in form.names:
                raise SoldOutError(
                    STEP_CART_ADD,
                    f"item {item_id} cannot be added (sold out or not on sale?)",
                    url=self.page_url,
                )
            redirect = self._async_post(STEP_CART_ADD, form, {field: str(quantity)})
            self.next_url = redirect
            if view_cart:
                self._get_page(STEP_CART_ADD, redirect)

    def start_checkout(self) -> str:
        """GET checkout/start and follow it to the first checkout step; returns that step's name."""
        with self._timed(STEP_CHECKOUT_START):
            self._get_page(STEP_CHECKOUT_START, f"{self.event_url}checkout/start")
            return self.current_checkout_step() or ""

    def current_checkout_step(self) -> str | None:
        m = _CHECKOUT_STEP_RE.search(urlsplit(self.page_url or "").path)
        return m.group("step") if m else None

    def _submit_step(self, step: str, form: _Form, overrides: dict[str, str]) -> None:
        before = self.page_url
        r = self._post_form(step, form, overrides)
        if r.status_code in (301, 302, 303):
            self._get_page(step, urljoin(before, r.headers["location"]))
            if self.page_url == before:
                self._raise_for_message(
                    step, error_messages(self.page_html) or "step did not advance", before
                )
            return
        msg = error_messages(r.text) or f"step was not accepted: {r.text[:200]!r}"
        self._raise_for_message(step, msg, before, r.status_code)

    def fill_questions(self, email: str, name: str) -> None:
        """Fill the questions step (contact e-mail, attendee name) and go to the next step."""
        with self._timed(STEP_QUESTIONS):
            if self.current_checkout_step() != "questions":
                raise ShopError(
                    STEP_QUESTIONS,
                    f"expected the questions step, got {self.page_url}",
                    url=self.page_url,
                )
            form = self._form(
                STEP_QUESTIONS, lambda f: "csrfmiddlewaretoken" in f.names and "email" in f.names
            )
            given, _, family = name.strip().partition(" ")
            over: dict[str, str] = {}
            for n in form.names:
                base = n.split("-", 1)[-1]
                if base in ("email", "email_repeat"):
                    over[n] = email
                elif re.fullmatch(r"attendee_name_parts_\d+", base):
                    idx = int(base.rsplit("_", 1)[1])
                    kind = form.kinds.get(n)
                    if kind == "hidden":
                        continue  # e.g. the name scheme marker
                    if idx == 0:
                        over[n] = given or name
                    elif idx == 1:
                        over[n] = family or given or name
                elif base == "attendee_name":
                    over[n] = name
            self._submit_step(STEP_QUESTIONS, form, over)

    def choose_payment(self, provider: str = "manual") -> None:
        """Select a payment provider on the payment step (no-op when pretix skipped that step)."""
        with self._timed(STEP_PAYMENT):
            if self.current_checkout_step() != "payment":
                return
            form = self._form(STEP_PAYMENT, lambda f: "payment" in f.names)
            if provider not in form.options.get("payment", []):
                raise ShopError(
                    STEP_PAYMENT,
                    f"payment provider {provider!r} not offered "
                    f"(offered: {form.options.get('payment')})",
                    url=self.page_url,
                )
            self._submit_step(STEP_PAYMENT, form, {"payment": provider})

    def confirm_order(self) -> str:
        """POST the confirm step (ajax) and poll the order placement; returns the redirect URL."""
        with self._timed(STEP_CONFIRM):
            if self.current_checkout_step() != "confirm":
                raise ShopError(
                    STEP_CONFIRM,
                    f"expected the confirm step, got {self.page_url}",
                    url=self.page_url,
                )
            form = self._form(
                STEP_CONFIRM,
                lambda f: (
                    "csrfmiddlewaretoken" in f.names
                    and "/checkout/confirm" in self._abs(f.action or self.page_url)
                ),
            )
            over = {
                n: "yes"
                for n in form.names
                if n.startswith("confirm_") and form.kinds.get(n) == "checkbox"
            }
            self.next_url = self._async_post(STEP_CONFIRM, form, over)
            if "/checkout/" in urlsplit(self.next_url).path:
                # pretix sends the buyer back to the checkout with an error message
                self._get_page(STEP_CONFIRM, self.next_url)
                self._raise_for_message(
                    STEP_CONFIRM,
                    error_messages(self.page_html) or "order was not placed",
                    self.next_url,
                )
            return self.next_url

    def open_order(self) -> tuple[str, str]:
        """Follow the order placement's redirect to ``order/<code>/<secret>/``: (code, secret)."""
        with self._timed(STEP_ORDER_PAGE):
            if not self.next_url:
                raise ShopError(STEP_ORDER_PAGE, "no order redirect (confirm_order first)")
            self._get_page(STEP_ORDER_PAGE, self.next_url)
            m = _ORDER_PATH_RE.search(urlsplit(self.page_url).path)
            if not m:
                raise ShopError(STEP_ORDER_PAGE, "did not land on an order page", url=self.page_url)
            self.order_code, self.order_secret = m.group("code"), m.group("secret")
            return self.order_code, self.order_secret


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
) -> PurchaseResult:
    """Buy one ticket like a browser does; returns the order code/secret and per-step timings.

    Raises :class:`ShopError` (or :class:`SoldOutError`) naming the failed step.
    """
    t0 = time.perf_counter()
    with ShopSession(base_url, organizer, event, timeout=timeout, client=client) as s:
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
            total_seconds=time.perf_counter() - t0,
        )


def find_order(
    base_url: str,
    token: str,
    organizer: str,
    event: str,
    code: str,
    *,
    timeout: float = 30.0,
    client: httpx.Client | None = None,
) -> dict[str, Any] | None:
    """GET /api/v1/organizers/{o}/events/{e}/orders/{code}/ -> the order (dict), None on 404."""
    url = f"{base_url.rstrip('/')}/api/v1/organizers/{organizer}/events/{event}/orders/{code}/"
    headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
    if client is not None:
        r = client.get(url, headers=headers, timeout=timeout)
    else:
        r = httpx.get(url, headers=headers, timeout=timeout)
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json()
