"""The buyer and its form parser on pages recorded from a real purchase in the dev cluster.

tests/fixtures/pretix/record_purchase.py recorded them: ``purchase/`` is every
response of one purchase (order SGZPH), ``refused/`` a questions step pretix
refused (an invalid e-mail address).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from pretix_cluster.loadtest.buyer import (
    STEPS,
    ShopError,
    ShopSession,
    buy_ticket,
    confirmation_checkboxes,
    order_of_url,
    question_answers,
)
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
