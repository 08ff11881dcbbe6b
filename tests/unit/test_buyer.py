"""The buyer and its form parser on pages recorded from a real purchase in the dev cluster.

tests/fixtures/pretix/record_purchase.py recorded them: ``purchase/`` is every
response of one purchase (order SGZPH), ``refused/`` a questions step pretix
refused (an invalid e-mail address). The waiting room's tests serve the same
purchase from a real HTTP server on 127.0.0.1 that holds some requests back as
the edge's waiting room does.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from pretix_cluster.daemons.nginx import WAITED_HEADER
from pretix_cluster.loadtest import flows
from pretix_cluster.loadtest.buyer import (
    STEP_EVENT_PAGE,
    STEP_QUESTIONS,
    STEPS,
    Hold,
    QueueTimeoutError,
    ShopError,
    ShopSession,
    buy_ticket,
    confirmation_checkboxes,
    order_of_url,
    question_answers,
    waiting_room_hold,
)
from pretix_cluster.loadtest.config import RunConfig
from pretix_cluster.loadtest.forms import error_messages, find_post_form, parse_forms

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pretix"
BASE = "http://127.0.0.1:8080"
ITEM = 1
ORDER = ("SGZPH", "c1i85rqv0x5iscmx")


def page(name: str) -> str:
    return (FIXTURES / name).read_text()


class Replay:
    """Answers the buyer's requests with the recorded responses, in the recorded order."""

    def __init__(self, folder: str):
        self.folder = FIXTURES / folder
        self.answers = json.loads((self.folder / "index.json").read_text())
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        recorded = self.answers[len(self.requests)]
        self.requests.append(request)
        assert (request.method, request.url.raw_path.decode()) == (
            recorded["method"],
            recorded["path"],
        )
        headers = {"content-type": recorded["content_type"]}
        if recorded["location"]:
            headers["location"] = recorded["location"]
        body = (self.folder / recorded["body"]).read_bytes()
        return httpx.Response(recorded["status"], headers=headers, content=body)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self), follow_redirects=False)

    def posted(self, path: str) -> dict[str, str]:
        [request] = [r for r in self.requests if r.method == "POST" and r.url.path == path]
        return dict(parse_qsl(request.content.decode()))


# --------------------------------------------------------------------------- the form parser


def test_the_event_page_offers_the_item_in_its_cart_form():
    form = find_post_form(page("purchase/00_get_event.html"), lambda f: "cart/add" in f.action)
    assert form is not None
    assert form.action == "/demo/tickets/cart/add?next=/demo/tickets/&next_error=/demo/tickets/"
    assert form.names == ["csrfmiddlewaretoken", "subevent", "item_1"]
    assert form.kinds["item_1"] == "number"
    assert len(form.value("csrfmiddlewaretoken") or "") == 64


def test_the_cart_page_has_a_form_per_action_and_the_checkout_link():
    html = page("purchase/03_get_event.html")
    forms = parse_forms(html)
    posts = [f.action for f in forms if f.method == "post"]
    assert posts[:3] == [
        "/demo/tickets/cart/remove",
        "/demo/tickets/cart/add",
        "/demo/tickets/cart/extend",
    ]
    assert ("get", "/demo/tickets/checkout/start") in [(f.method, f.action) for f in forms]
    # the checkout link is a GET form: never one the buyer posts
    assert find_post_form(html, lambda f: "checkout/start" in f.action) is None
    remove = forms[0]
    assert remove.data({}) == [
        ("csrfmiddlewaretoken", remove.value("csrfmiddlewaretoken")),
        ("id", "2"),
    ]


def test_the_questions_step_is_answered_with_email_and_both_name_parts():
    html = page("purchase/05_get_checkout-questions.html")
    form = find_post_form(html, lambda f: "email" in f.names)
    assert form is not None
    answers = question_answers(form, "ann@example.org", "Ann Lee Smith")
    assert answers == {
        "email": "ann@example.org",
        "2-attendee_name_parts_0": "Ann",
        "2-attendee_name_parts_1": "Lee Smith",
    }
    sent = form.data(answers)
    assert sent[0] == ("csrfmiddlewaretoken", form.value("csrfmiddlewaretoken"))
    assert dict(sent)["email"] == "ann@example.org"
    assert [k for k, _ in sent].count("email") == 1  # an override replaces, never repeats


def test_the_payment_step_offers_manual_payment_preselected():
    form = find_post_form(
        page("purchase/07_get_checkout-payment.html"), lambda f: "payment" in f.names
    )
    assert form is not None
    assert form.kinds["payment"] == "radio"
    assert form.options["payment"] == ["manual"]
    assert form.value("payment") == "manual"  # the only provider comes checked


def test_the_confirm_step_posts_to_itself_with_nothing_to_tick():
    html = page("purchase/09_get_checkout-confirm.html")
    form = find_post_form(html, lambda f: f.action == "" and "csrfmiddlewaretoken" in f.names)
    assert form is not None
    assert form.names == ["csrfmiddlewaretoken"]
    assert confirmation_checkboxes(form) == {}


def test_a_refused_step_shows_its_error_and_keeps_what_was_typed():
    html = page("refused/06_post_checkout-questions.html")
    assert error_messages(html) == (
        "Error: We had difficulties processing your input. Please review the errors below."
    )
    form = find_post_form(html, lambda f: "email" in f.names)
    assert form is not None
    assert form.value("email") == "not-an-address"
    assert form.value("3-attendee_name_parts_1") == "Refused"


def test_controls_outside_a_form_belong_to_none():
    [form] = parse_forms('<form method="post"><input name="a" value="1"></form><input name="b">')
    assert form.names == ["a"]


def test_selects_send_the_selected_or_first_option_and_textareas_their_text():
    """No recorded page has these controls (pretix's demo shop asks no such question)."""
    [form] = parse_forms(
        '<form method="post"><select name="country"><option value="AT">Austria</option>'
        "<option selected>DE</option></select>"
        '<select name="size"><option value="s">S</option><option value="m">M</option></select>'
        '<textarea name="note">hello &amp; bye</textarea><input type="submit" name="go"></form>'
    )
    assert form.options == {"country": ["AT", "DE"], "size": ["s", "m"]}
    assert form.fields == [("country", "DE"), ("size", "s"), ("note", "hello & bye")]
    assert form.kinds == {"country": "select", "size": "select", "note": "textarea", "go": "submit"}


def test_pages_without_an_error_show_none():
    assert error_messages(page("purchase/00_get_event.html")) == ""
    assert error_messages(page("purchase/13_get_order-SGZPH-c1i85rqv0x5iscmx.html")) == ""


def test_the_order_page_url_names_code_and_secret():
    assert order_of_url(f"{BASE}/demo/tickets/order/SGZPH/c1i85rqv0x5iscmx/?thanks=yes") == ORDER
    assert order_of_url(f"{BASE}/demo/tickets/order/SGZPH/c1i85rqv0x5iscmx/pay/2/complete") is None
    assert order_of_url(f"{BASE}/demo/tickets/checkout/confirm/") is None


# --------------------------------------------------------------------------- the buyer, replayed


def test_a_recorded_purchase_replays_step_by_step():
    replay = Replay("purchase")
    with replay.client() as client:
        result = buy_ticket(
            BASE, "demo", "tickets", ITEM, email="ann@example.org", name="Ann Lee", client=client
        )
    assert (result.order_code, result.order_secret) == ORDER
    assert result.order_url.endswith("/order/SGZPH/c1i85rqv0x5iscmx/?thanks=yes")
    assert set(result.timings) == set(STEPS)
    assert len(replay.requests) == len(replay.answers)  # every recorded request was made

    csrf = find_post_form(
        page("purchase/05_get_checkout-questions.html"), lambda f: "email" in f.names
    )
    assert csrf is not None
    questions = replay.posted("/demo/tickets/checkout/questions/")
    assert questions == {
        "csrfmiddlewaretoken": csrf.value("csrfmiddlewaretoken"),
        "email": "ann@example.org",
        "2-attendee_name_parts_0": "Ann",
        "2-attendee_name_parts_1": "Lee",
    }
    assert replay.posted("/demo/tickets/cart/add")["item_1"] == "1"
    assert replay.posted("/demo/tickets/cart/add")["ajax"] == "1"
    assert replay.posted("/demo/tickets/checkout/payment/")["payment"] == "manual"
    assert replay.posted("/demo/tickets/checkout/confirm/")["ajax"] == "1"
    for request in replay.requests:
        if request.method == "POST":  # pretix's CSRF check wants both, like a browser sends
            assert request.headers["origin"] == BASE
            assert request.headers["referer"].startswith(BASE + "/demo/tickets/")


def test_a_refused_questions_step_raises_with_pretix_message():
    replay = Replay("refused")
    with replay.client() as client, ShopSession(BASE, "demo", "tickets", client=client) as s:
        s.open_event()
        s.add_to_cart(ITEM)
        assert s.start_checkout() == "questions"
        with pytest.raises(ShopError) as refused:
            s.fill_questions("not-an-address", "Fixture Refused")
    assert refused.value.step == "questions"
    assert refused.value.status == 200
    assert refused.value.message.startswith("Error: We had difficulties processing your input.")


# --------------------------------------------------------------------------- the waiting room

EVENT_PAGE = ("GET", "/demo/tickets/")
QUESTIONS = ("POST", "/demo/tickets/checkout/questions/")
TICKET = "wr_ticket=place-in-line"  # the cookie nginx gives a buyer it holds back


@dataclasses.dataclass(frozen=True)
class Seen:
    method: str
    path: str
    cookie: str
    body: bytes


class WaitingRoomShop(http.server.ThreadingHTTPServer):
    """The recorded purchase on 127.0.0.1 behind a waiting room: each request in ``holds``
    is held back (503, X-Waiting-Room, Retry-After) once per Retry-After listed, then served.
    """

    daemon_threads = True

    def __init__(
        self,
        holds: dict[tuple[str, str], list[str]],
        door: dict[tuple[str, str], float] | None = None,
    ):
        """``door``: requests held that long at the door, then served (nginx near the front)."""
        super().__init__(("127.0.0.1", 0), _ShopHandler)
        self.door = dict(door or {})
        self.folder = FIXTURES / "purchase"
        self.answers = json.loads((self.folder / "index.json").read_text())
        self.holds = {request: list(waits) for request, waits in holds.items()}
        self.seen: list[Seen] = []
        self.served = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> WaitingRoomShop:
        # a short poll interval: shutdown() waits up to one
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def answer(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        self.seen.append(seen)
        waits = self.holds.get((seen.method, seen.path))
        if waits:
            headers = {
                "Retry-After": waits.pop(0),
                "X-Waiting-Room": str(len(waits) + 1),  # the line shortens as it waits
                "Cache-Control": "no-store",
                "Set-Cookie": f"{TICKET}; Path=/; HttpOnly",
                "Content-Type": "text/html",
            }
            return 503, headers, b'<meta http-equiv="refresh" content="1">You are in line.'
        recorded = self.answers[self.served]
        self.served += 1
        headers = {"Content-Type": recorded["content_type"]}
        at_the_door = self.door.pop((seen.method, seen.path), None)
        if at_the_door is not None:
            time.sleep(at_the_door)
            headers[WAITED_HEADER] = f"{at_the_door:.3f}"
        if recorded["location"]:
            headers["Location"] = recorded["location"]
        return recorded["status"], headers, (self.folder / recorded["body"]).read_bytes()

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [r for r in self.seen if (r.method, r.path) == (method, path)]


class _ShopHandler(http.server.BaseHTTPRequestHandler):
    server: WaitingRoomShop

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        seen = Seen(self.command, self.path, self.headers.get("Cookie") or "", body)
        status, headers, content = self.server.answer(seen)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:  # the test's output stays the test's
        return None


def test_the_buyer_waits_in_line_and_repeats_the_held_request():
    holds = {EVENT_PAGE: ["1", "1"], QUESTIONS: ["0"]}  # "0": the buyer's floor, 0.5 s
    with WaitingRoomShop(holds) as shop:
        result = buy_ticket(
            shop.base_url, "demo", "tickets", ITEM, email="ann@example.org", name="Ann Lee"
        )
    assert (result.order_code, result.order_secret) == ORDER
    # held twice, then served: the same GET three times, the ticket cookie from the first hold on
    event_page = shop.requests_to(*EVENT_PAGE)
    assert [r.cookie for r in event_page] == ["", TICKET, TICKET]
    # a held POST goes again as it was: same URL, same form
    questions = shop.requests_to(*QUESTIONS)
    assert len(questions) == 2 and questions[0].body == questions[1].body
    assert dict(parse_qsl(questions[1].body.decode()))["email"] == "ann@example.org"
    assert shop.served == len(shop.answers)  # every recorded answer was asked for once
    # the wait (1 + 1 + 0.5 s) is the queue's: neither the steps nor the purchase count it
    assert result.queue_seconds >= 2.5
    assert result.timings[STEP_EVENT_PAGE] < 1.0 and result.timings[STEP_QUESTIONS] < 0.5
    assert result.total_seconds < 2.0


def test_a_buyer_held_past_its_queue_timeout_gives_up():
    with (
        WaitingRoomShop({EVENT_PAGE: ["1", "1", "1"]}) as shop,
        ShopSession(shop.base_url, "demo", "tickets", queue_timeout=1.5) as s,
        pytest.raises(QueueTimeoutError) as gave_up,
    ):
        s.open_event()
    # waited 1 s after the first hold; a second wait would pass 1.5 s: no third request
    assert len(shop.seen) == 2 and s.queue_holds == 2 and s.queue_position == 3
    assert gave_up.value.step == STEP_EVENT_PAGE and gave_up.value.status == 503
    assert "queue timeout of 1.5 s" in gave_up.value.message


def test_only_the_waiting_rooms_503_is_a_hold():
    held = httpx.Response(503, headers={"X-Waiting-Room": "7", "Retry-After": "3"})
    assert waiting_room_hold(held) == Hold(position=7, wait_s=3.0)
    # the edge's unavailable page: an error the load test classifies, not a line to wait in
    page = httpx.Response(503, headers={"X-Upstream-Status": "502", "Retry-After": "30"})
    assert waiting_room_hold(page) is None
    # the waits stay within the floor and the cap, whatever the header says
    for retry_after, wait in (("0", 0.5), ("3600", 30.0), ("soon", 0.5)):
        held = httpx.Response(503, headers={"X-Waiting-Room": "1", "Retry-After": retry_after})
        assert waiting_room_hold(held) == Hold(position=1, wait_s=wait)


def test_the_ledger_keeps_the_wait_apart_from_the_purchase(tmp_path):
    with WaitingRoomShop({EVENT_PAGE: ["1"]}) as shop:
        cfg = RunConfig(
            run_id="lt1",
            scenario="shop",
            base_url=shop.base_url,
            host_header=None,
            organizer="demo",
            event="tickets",
            item_id=ITEM,
            quota_id=1,
            quota_size=10,
            ledger_dir=str(tmp_path),
            plan={},
            pace_s=1.0,
            fetch_assets=False,  # the recorded purchase has no assets to serve
        )
        with flows.make_client(cfg) as client:
            flow = flows.ShopFlow(cfg, client, flows.NullReporter())
            record = flow.purchase(flows.Identity.new(cfg.run_id))
    assert record["outcome"] == "completed" and record["code"] == ORDER[0]
    assert (record["queue_holds"], record["queue_position"]) == (1, 1)
    assert record["queue_s"] >= 1.0
    # the step and the purchase are the admitted buyer's; the buyer's end is after both
    assert record["steps"][STEP_EVENT_PAGE] < 0.5 and record["seconds"] < 1.0
    assert record["t1"] - record["t0"] == pytest.approx(
        record["queue_s"] + record["seconds"], abs=0.01
    )


def test_a_wait_at_the_door_is_the_queues_not_the_steps():
    with WaitingRoomShop({}, door={EVENT_PAGE: 1.0}) as shop:
        result = buy_ticket(
            shop.base_url, "demo", "tickets", ITEM, email="ann@example.org", name="Ann Lee"
        )
    assert len(shop.requests_to(*EVENT_PAGE)) == 1  # passed on, not sent again
    assert result.queue_seconds == pytest.approx(1.0)
    assert result.timings[STEP_EVENT_PAGE] < 0.9
