"""The last ticket, a cart add and a checkout at the same moment, inside a pretix container.

Run by ``test_quota_race.py`` as ``python -`` in a running pretix container (the
script on stdin, a ``PARAMS = {...}`` line prepended), against the cluster's own
PostgreSQL. It drives pretix's real code: the ``CartManager`` the cart-add task
runs and the ``_perform_order`` the checkout task runs, each in its own thread and
database connection.

pretix counts a quota's claims in separate statements (orders, then vouchers, then
carts) after taking the quota's lock. A checkout turns a cart position into an
order in one transaction; if it commits between a cart add's count of orders and
its count of carts, that claim is in neither count and the cart add sees one
ticket too many. The probe makes that moment happen on purpose: the cart add
pauses between the two counts until the checkout's order has committed, or for
``hold_s`` if it cannot commit meanwhile (the pause and the signal of the commit
are all that is added to pretix's code path). It prints one JSON line: what each
side did and the quota's claims afterwards.

PARAMS: organizer, event, item_id, quota_id (a quota of size 1 holding the item),
hold_s (< pretix's 3 s lock timeout).
"""

import json
import threading
import time

import django

django.setup()

from django.db import connection, transaction  # noqa: E402
from django_scopes import scopes_disabled  # noqa: E402
from pretix.base.models import CartPosition, Event, Quota  # noqa: E402
from pretix.base.services import orders  # noqa: E402
from pretix.base.services.cart import CartError, CartManager  # noqa: E402
from pretix.base.services.quotas import QuotaAvailability  # noqa: E402

P = PARAMS  # noqa: F821 (prepended by the test)
ADDER = "race-adder"
counted_orders = threading.Event()
order_committed = threading.Event()
seen: dict = {}


def pause_between_the_counts(original):
    def paused(self, *args, **kwargs):
        if threading.current_thread().name == ADDER and "paused" not in seen:
            seen["paused"] = True
            seen["pause_inside_transaction"] = connection.in_atomic_block
            counted_orders.set()
            seen["order_committed_inside_the_pause"] = order_committed.wait(P["hold_s"])
        return original(self, *args, **kwargs)

    return paused


def signal_the_orders_commit(original):
    def create_order(*args, **kwargs):
        created = original(*args, **kwargs)
        transaction.on_commit(order_committed.set)
        return created

    return create_order


def add_to_cart(event, cart_id):
    manager = CartManager(
        event=event,
        cart_id=cart_id,
        sales_channel=event.organizer.sales_channels.get(identifier="web"),
    )
    manager.add_new_items([{"item": P["item_id"], "variation": None, "count": 1}])
    manager.commit()


def adder(event):
    try:
        with scopes_disabled():
            add_to_cart(event, f"{P['event']}-second-buyer")
        seen["second_cart_add"] = "added"
    except CartError as e:
        seen["second_cart_add"] = f"refused: {e}"
    finally:
        connection.close()


def checkout(event, position_ids):
    counted_orders.wait(10)
    seen["checkout_started_inside_the_pause"] = counted_orders.is_set()
    try:
        with scopes_disabled():
            for attempt in range(3):  # the checkout task retries a lock timeout
                try:
                    order = orders._perform_order(
                        event,
                        [{"provider": "manual", "info_data": {}, "multi_use_supported": False}],
                        position_ids,
                        email="race-first@example.org",
                        locale="en",
                        address=None,
                    )
                    seen["first_checkout"] = f"order {order['order_id']}"
                    break
                except orders.LockTimeoutException:
                    seen["first_checkout"] = f"lock timeout (attempt {attempt + 1})"
                except orders.OrderError as e:
                    seen["first_checkout"] = f"refused: {e}"
                    break
    finally:
        order_committed.set()
        connection.close()


def claims(quota):
    qa = QuotaAvailability(full_results=True)
    qa.queue(quota)
    qa.compute()
    return {
        "size": quota.size,
        "orders": qa.count_paid_orders[quota] + qa.count_pending_orders[quota],
        "carts": qa.count_cart[quota],
    }


def main():
    qa = QuotaAvailability
    qa._compute_vouchers = pause_between_the_counts(qa._compute_vouchers)
    orders._create_order = signal_the_orders_commit(orders._create_order)
    with scopes_disabled():
        event = Event.objects.get(organizer__slug=P["organizer"], slug=P["event"])
        quota = Quota.objects.get(event=event, pk=P["quota_id"])
        first_cart = f"{P['event']}-first-buyer"
        add_to_cart(event, first_cart)
        first_positions = CartPosition.objects.filter(event=event, cart_id=first_cart)
        first = list(first_positions.values_list("id", flat=True))
    threads = [
        threading.Thread(target=adder, args=(event,), name=ADDER),
        threading.Thread(target=checkout, args=(event, first), name="race-checkout"),
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    seen["seconds"] = round(time.monotonic() - started, 3)
    with scopes_disabled():
        quota.refresh_from_db()
        seen["claims"] = claims(quota)
    print(json.dumps(seen))


main()
