"""One purchase, the way a buyer makes it: in the shop like a browser, or through the REST API.

Free of Locust so that the orchestrator can run the same purchase for
calibration, and the tests can reason about it. Everything the load generator
should count goes through a :class:`Reporter` (the Locust users turn it into
Locust request events): each step try with its own time, each static asset,
each busy retry, the purchase as a whole, and a buyer's wait in the edge's
waiting room. The result of an attempt is the ledger record (see
:mod:`pretix_cluster.loadtest.ledger`). Step and purchase times are the
admitted buyer's: the waiting room's wait is recorded apart (``queue_s``).

Shop flow (``ShopSession`` from :mod:`pretix_cluster.loadtest.buyer`): event page,
its static assets through nginx (stylesheets, scripts, favicon, and the web
fonts the stylesheet names, as a browser with an empty cache), add to cart with
the async task polling, checkout start, questions (e-mail, attendee name),
manual payment, confirm with polling, order page. API flow: one
``POST /orders/`` with an ``X-Idempotency-Key``, so that every retry is safe.

Every attempt is a new buyer: own identity (e-mail ``<run>-<attempt>@example.org``
and name) and own session (the cookie jar is emptied; the connection pool is
kept like a browser's keep-alive connections).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from pretix_cluster.daemons.nginx import UPSTREAM_STATUS_HEADER
from pretix_cluster.loadtest import buyer
from pretix_cluster.loadtest.busy import (
    Backoff,
    Verdict,
    classify_api_answer,
    classify_shop_error,
    parse_retry_after,
    parse_upstream_status,
)
from pretix_cluster.loadtest.buyer import ShopError, ShopSession
from pretix_cluster.loadtest.config import RunConfig

# Request types as Locust shows them (its "Type" column).
T_STEP, T_ASSET, T_PURCHASE, T_RETRY = "STEP", "ASSET", "PURCHASE", "RETRY"
T_QUEUE = "QUEUE"
PURCHASE = "purchase"
WAITING_ROOM = "waiting_room"
STEP_ASSETS = "event_assets"
STEP_API_ORDER = "api_order"


class Reporter(Protocol):
    def report(
        self, kind: str, name: str, seconds: float, length: int = 0, error: str | None = None
    ) -> None: ...


class NullReporter:
    def report(
        self, kind: str, name: str, seconds: float, length: int = 0, error: str | None = None
    ) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class Identity:
    attempt: str
    email: str
    name: str

    @classmethod
    def new(cls, run_id: str) -> Identity:
        attempt = uuid.uuid4().hex[:16]
        return cls(
            attempt=attempt,
            email=f"{run_id}-{attempt}@example.org",
            name=f"Buyer {attempt[:8].upper()}",
        )


def attempt_of_email(email: str, run_id: str) -> str | None:
    """The attempt id encoded in a buyer's e-mail address, or None if not of this run."""
    m = re.fullmatch(re.escape(run_id) + r"-([0-9a-f]{16})@example\.org", email or "", re.I)
    return m.group(1).lower() if m else None


class _RetryAfter:
    """Remembers the last response's ``Retry-After`` and the status the edge's 503 page
    replaced (ShopError does not carry headers)."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.replaced: int | None = None

    def hook(self, response: httpx.Response) -> None:
        self.value = parse_retry_after(response.headers.get("retry-after"))
        self.replaced = parse_upstream_status(response.headers.get(UPSTREAM_STATUS_HEADER))


def make_client(cfg: RunConfig, *, pool: int = 10) -> httpx.Client:
    """An httpx client like one browser: keep-alive pool, our User-Agent, the right Host."""
    headers = {"User-Agent": buyer.USER_AGENT}
    if cfg.host_header:
        headers["Host"] = cfg.host_header
    client = httpx.Client(
        timeout=cfg.timeout_s,
        follow_redirects=False,
        headers=headers,
        # One context per trust, shared by every buyer: no CA reload per client.
        verify=cfg.trust().verify(),
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
    )
    retry_after = _RetryAfter()
    client.event_hooks["response"] = [retry_after.hook]
    client.retry_after = retry_after  # type: ignore[attr-defined]
    return client


def _retry_after(client: httpx.Client) -> float | None:
    holder = getattr(client, "retry_after", None)
    return holder.value if holder else None


class StepFailed(Exception):
    def __init__(self, step: str, verdict: Verdict, message: str, status: int | None):
        self.step, self.verdict, self.message, self.status = step, verdict, message, status
        super().__init__(f"[{step}] {verdict.kind}: {message}")


class _Attempt:
    """Bookkeeping of one purchase attempt: retries, step times, the ledger record.

    ``session``: the shop buyer, whose time in the waiting room is the queue's and not
    the purchase's (None for the API flow, which the waiting room never holds).
    """

    def __init__(
        self,
        cfg: RunConfig,
        scenario: str,
        identity: Identity,
        reporter: Reporter,
        session: ShopSession | None = None,
    ):
        self.cfg, self.reporter, self.identity = cfg, reporter, identity
        self.session = session
        self.backoff = Backoff(cfg.retry)
        self.retries: Counter[str] = Counter()
        self.steps: dict[str, float] = {}
        self.t0 = time.time()
        self.p0 = self.clock()
        self.record: dict[str, Any] = {
            "run": cfg.run_id,
            "attempt": identity.attempt,
            "scenario": scenario,
            "event": cfg.event,
            "email": identity.email,
            "pid": os.getpid(),
        }

    def wait_for_retry(self, step: str, verdict: Verdict, try_no: int, retry_after) -> bool:
        """Back off before another try; False when the retry budget is spent."""
        wait = self.backoff.delay(try_no, retry_after)
        if wait is None:
            return False
        self.retries[verdict.kind] += 1
        self.reporter.report(T_RETRY, f"{step} {verdict.kind}", wait)
        time.sleep(wait)
        return True

    def clock(self) -> float:
        """Seconds on the buyer's clock without its waiting room holds (wall time for the API)."""
        return self.session.served_time() if self.session else time.perf_counter()

    def finish(self, outcome: str, **extra: Any) -> dict[str, Any]:
        seconds = self.clock() - self.p0
        queue_s = self.session.queue_seconds if self.session else 0.0
        self.record.update(
            outcome=outcome,
            t0=round(self.t0, 3),
            t1=round(self.t0 + queue_s + seconds, 3),  # when the buyer was done: after both
            seconds=round(seconds, 4),
            steps={k: round(v, 4) for k, v in self.steps.items()},
            retries=sum(self.retries.values()),
            retry_kinds=dict(self.retries),
            **extra,
        )
        if self.session and self.session.queue_holds:  # the record is as before without one
            self.record.update(
                queue_s=round(queue_s, 4),
                queue_holds=self.session.queue_holds,
                queue_position=self.session.queue_position,
            )
            self.reporter.report(T_QUEUE, WAITING_ROOM, queue_s)
        error = None if outcome == "completed" else str(extra.get("kind") or outcome)
        self.reporter.report(T_PURCHASE, PURCHASE, seconds, error=error)
        return self.record


# --------------------------------------------------------------------------- shop flow

_ASSET_RE = re.compile(r"<(link|script|img)\b([^>]*)>", re.I)
_ATTR_RE = re.compile(r'([a-zA-Z-]+)\s*=\s*"([^"]*)"')
_FONT_FACE_RE = re.compile(r"@font-face\s*{([^}]*)}", re.I)
_CSS_URL_RE = re.compile(r"url\(\s*['\"]?([^'\")]+?)['\"]?\s*\)(?:\s*format\(['\"]?(\w+))?")
_css_fonts: dict[str, list[str]] = {}  # stylesheet URL -> fonts it makes a browser load
MAX_FONTS_PER_CSS = 4


def page_assets(html: str, page_url: str) -> list[str]:
    """Same-origin subresources a browser loads for ``html``: stylesheets, scripts, one favicon,
    images (not preloads for other devices such as apple-touch-icon)."""
    origin = urlsplit(page_url).netloc
    found: list[str] = []
    icon = False
    for tag, attrs_text in _ASSET_RE.findall(html):
        attrs = {k.lower(): v for k, v in _ATTR_RE.findall(attrs_text)}
        tag = tag.lower()
        url = None
        if tag == "link":
            rel = attrs.get("rel", "").lower().split()
            if "stylesheet" in rel:
                url = attrs.get("href")
            elif "icon" in rel and not icon:
                url, icon = attrs.get("href"), True
        elif tag in ("script", "img"):
            url = attrs.get("src")
        if not url or url.startswith("data:"):
            continue
        absolute = urljoin(page_url, url.replace("&amp;", "&"))
        if urlsplit(absolute).netloc == origin and absolute not in found:
            found.append(absolute)
    return found


def css_fonts(css: str, css_url: str) -> list[str]:
    """One font file per ``@font-face`` (woff2, else woff), as a modern browser picks."""
    fonts: list[str] = []
    for block in _FONT_FACE_RE.findall(css):
        urls = [(u, (fmt or u.rsplit(".", 1)[-1]).lower()) for u, fmt in _CSS_URL_RE.findall(block)]
        for wanted in ("woff2", "woff"):
            pick = next((u for u, fmt in urls if fmt.startswith(wanted)), None)
            if pick:
                fonts.append(urljoin(css_url, pick.split("#")[0]))
                break
    return fonts[:MAX_FONTS_PER_CSS]


def _asset_name(url: str) -> str:
    path = urlsplit(url).path
    if path.startswith("/static/"):
        ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else "other"
        return f"static .{ext}"
    return f"page {path.rstrip('/').rsplit('/', 1)[-1]}"  # pretix-generated, e.g. theme.css


class ShopFlow:
    """A browser-like buyer slot; :meth:`purchase` is one new buyer's complete purchase."""

    def __init__(self, cfg: RunConfig, client: httpx.Client, reporter: Reporter):
        self.cfg, self.client, self.reporter = cfg, client, reporter
        self.interrupted: dict[str, Any] | None = None  # the record of a purchase cut short

    def _fetch_assets(self, session: ShopSession) -> int:
        """Load the event page's subresources; failures are counted, never fatal."""
        errors = 0
        queue = page_assets(session.page_html, session.page_url or session.event_url)
        seen = set(queue)
        while queue:
            url = queue.pop(0)
            t0 = time.perf_counter()
            error, length = None, 0
            try:
                is_css = url.split("?")[0].endswith(".css") and url not in _css_fonts
                with self.client.stream("GET", url, headers={"Referer": session.page_url}) as r:
                    if is_css and r.status_code == 200:
                        body = r.read()
                        length = len(body)
                        _css_fonts[url] = css_fonts(body.decode("utf-8", "replace"), url)
                    else:
                        for chunk in r.iter_raw():  # no decompression: the generator's CPU
                            length += len(chunk)
                    if r.status_code != 200:
                        error = f"http_{r.status_code}"
            except httpx.HTTPError as e:
                error = type(e).__name__
            self.reporter.report(T_ASSET, _asset_name(url), time.perf_counter() - t0, length, error)
            errors += error is not None
            for font in _css_fonts.get(url, []):
                if font not in seen:
                    seen.add(font)
                    queue.append(font)
        return errors

    def purchase(self, identity: Identity) -> dict[str, Any]:
        cfg = self.cfg
        self.client.cookies.clear()  # a new buyer: no session, no CSRF cookie, no queue ticket
        s = ShopSession(
            cfg.base_url,
            cfg.organizer,
            cfg.event,
            timeout=cfg.timeout_s,
            poll_timeout=cfg.poll_timeout_s,
            client=self.client,
        )
        att = _Attempt(cfg, "shop", identity, self.reporter, session=s)
        if cfg.public_origin:  # pretix checks Origin against the Host it was sent
            s.origin = cfg.public_origin

        def reload(step: str, page: str) -> Callable[[], None]:
            """Before retrying a refused form, load its page again, as the browser shows it."""
            return lambda: s.reload_checkout_step(step, page)

        plan: list[tuple[str, Callable[[], Any], bool, Callable[[], None] | None]] = [
            (buyer.STEP_EVENT_PAGE, s.open_event, True, None),
            (buyer.STEP_CART_ADD, lambda: s.add_to_cart(cfg.item_id), False, None),
            (buyer.STEP_CHECKOUT_START, s.start_checkout, True, None),
            (
                buyer.STEP_QUESTIONS,
                lambda: s.fill_questions(identity.email, identity.name),
                True,
                reload(buyer.STEP_QUESTIONS, "questions"),
            ),
            (
                buyer.STEP_PAYMENT,
                lambda: s.choose_payment(cfg.payment_provider),
                True,
                reload(buyer.STEP_PAYMENT, "payment"),
            ),
            (
                buyer.STEP_CONFIRM,
                s.confirm_order,
                False,
                reload(buyer.STEP_CONFIRM, "confirm"),
            ),
            (buyer.STEP_ORDER_PAGE, s.open_order, True, None),
        ]
        try:
            asset_errors = 0
            for step, action, idempotent, prepare in plan:
                self._run_step(att, step, action, idempotent, prepare)
                if step == buyer.STEP_EVENT_PAGE and cfg.fetch_assets:
                    t0 = time.perf_counter()
                    asset_errors = self._fetch_assets(s)
                    att.steps[STEP_ASSETS] = time.perf_counter() - t0
            return att.finish("completed", code=s.order_code, asset_errors=asset_errors)
        except StepFailed as f:
            hint = _order_code(s.next_url) if f.step == buyer.STEP_ORDER_PAGE else None
            return att.finish(
                "failed",
                kind=f.verdict.kind,
                step=f.step,
                status=f.status,
                message=f.message[:300],
                code_hint=hint,
            )
        except Exception as e:  # a bug in the buyer, not a verdict on the shop
            return att.finish("failed", kind="client_bug", message=repr(e)[:300])
        except BaseException as e:  # GreenletExit when Locust stops a buyer mid-purchase
            self.interrupted = att.finish(
                "interrupted", kind="interrupted", message=type(e).__name__
            )
            raise

    def _run_step(
        self,
        att: _Attempt,
        step: str,
        action: Callable[[], Any],
        idempotent: bool,
        prepare: Callable[[], None] | None,
    ) -> None:
        try_no = 0
        while True:
            try_no += 1
            holder = getattr(self.client, "retry_after", None)
            if holder:
                holder.value = holder.replaced = None
            t0 = att.clock()  # a try's time is pretix's: the waiting room's hold is left out
            try:
                if try_no > 1 and prepare is not None:
                    prepare()
                action()
            except ShopError as e:
                seconds = att.clock() - t0
                replaced = holder.replaced if holder else None
                verdict = classify_shop_error(e, idempotent=idempotent, replaced=replaced)
                self.reporter.report(T_STEP, step, seconds, error=verdict.kind)
                if verdict.retryable and att.wait_for_retry(
                    step, verdict, try_no, _retry_after(self.client)
                ):
                    continue
                raise StepFailed(step, verdict, e.message, e.status) from e
            seconds = att.clock() - t0
            att.steps[step] = seconds
            self.reporter.report(T_STEP, step, seconds)
            return


def _order_code(url: str | None) -> str | None:
    m = re.search(r"/order/([A-Z0-9]+)/", url or "")
    return m.group(1) if m else None


# --------------------------------------------------------------------------- API flow


class ApiFlow:
    """Orders through ``POST /api/v1/organizers/{o}/events/{e}/orders/`` with the team token."""

    def __init__(self, cfg: RunConfig, client: httpx.Client, token: str, reporter: Reporter):
        self.cfg, self.client, self.reporter = cfg, client, reporter
        self.interrupted: dict[str, Any] | None = None
        self.url = (
            f"{cfg.base_url.rstrip('/')}/api/v1/organizers/{cfg.organizer}"
            f"/events/{cfg.event}/orders/"
        )
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json"}

    def body(self, identity: Identity) -> dict[str, Any]:
        given, _, family = identity.name.partition(" ")
        return {
            "email": identity.email,
            "locale": "en",
            "sales_channel": "web",
            "payment_provider": self.cfg.payment_provider,
            "send_email": False,
            "positions": [
                {
                    "item": self.cfg.item_id,
                    "attendee_name_parts": {"given_name": given, "family_name": family},
                }
            ],
        }

    def purchase(self, identity: Identity) -> dict[str, Any]:
        att = _Attempt(self.cfg, "api", identity, self.reporter)
        headers = {**self.headers, "X-Idempotency-Key": f"{self.cfg.run_id}-{identity.attempt}"}
        body = self.body(identity)
        try_no = 0
        try:
            while True:
                try_no += 1
                t0 = time.perf_counter()
                status, text, exc_name = None, "", None
                try:
                    r = self.client.post(self.url, json=body, headers=headers)
                    status, text = r.status_code, r.text
                except httpx.HTTPError as e:
                    exc_name = type(e).__name__
                seconds = time.perf_counter() - t0
                if status == 201:
                    att.steps[STEP_API_ORDER] = seconds
                    self.reporter.report(T_STEP, STEP_API_ORDER, seconds, len(text))
                    return att.finish("completed", code=r.json()["code"])
                verdict = classify_api_answer(status, text, exc_name)
                self.reporter.report(T_STEP, STEP_API_ORDER, seconds, len(text), verdict.kind)
                retry_after = parse_retry_after(r.headers.get("retry-after")) if status else None
                if verdict.retryable and att.wait_for_retry(
                    STEP_API_ORDER, verdict, try_no, retry_after
                ):
                    continue
                return att.finish(
                    "failed",
                    kind=verdict.kind,
                    step=STEP_API_ORDER,
                    status=status,
                    message=(text or exc_name or "")[:300],
                )
        except Exception as e:
            return att.finish("failed", kind="client_bug", message=repr(e)[:300])
        except BaseException as e:
            self.interrupted = att.finish(
                "interrupted", kind="interrupted", message=type(e).__name__
            )
            raise
