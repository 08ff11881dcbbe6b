"""Ensure the demo shop through pretix's ORM; installed in the image, run by `up`.

    docker exec -i <pretix container> /opt/pretix/venv/bin/python \
        /usr/local/lib/pretix-cluster/shop_setup.py  < params.json

The parameters (the fields of the host's ``ShopSetupParams``, among them the
admin password) come as one JSON object on stdin, never on the command line or
in the environment. The result is ONE JSON line on stdout: organizer, event,
item_id, quota_id, api_token, api_token_created, changes.

It runs ``django.setup()`` with the image's DJANGO_SETTINGS_MODULE and
PRETIX_CONFIG_FILE and django-scopes disabled, which is what ``python -m pretix
shell_scoped --override`` would do. (``shell``/``shell_scoped`` read a script
from stdin only if it is already readable when they start, and fall back to an
interactive REPL otherwise, so they are not used.)

Idempotent: every step is "ensure" (get, compare, create/update only on
difference) inside one transaction guarded by a PostgreSQL advisory lock, so
two concurrent runs cannot both create. A second run with the same parameters
changes nothing and reports ``changes: []``.

Ensured state:
  * global: pretix's update check off (it would call pretix.eu);
  * user ``admin_email``: password = ``admin_password``, no forced change;
  * the organizer; a team (all events, all permissions) with the admin as
    member and one active API token;
  * the event: live, not in test mode, presale open now, event date in the
    future (moved forward again when it comes closer than 7 days), plugin
    ``pretix.plugins.manualpayment`` on and the "manual" payment provider
    enabled (orders are created as *pending* and can be marked paid), attendee
    names asked and required, no invoice address asked;
  * one admission item (price ``item_price``), one quota of ``quota_size`` with
    that item.

The API token is stored in clear text in pretix's database, so it is always
read back and printed (``api_token_created`` tells whether this run made it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
import zlib
from decimal import Decimal
from typing import Any

ITEM_INTERNAL_NAME = "pretix-cluster-ticket"
QUOTA_NAME = "pretix-cluster tickets"
MANUAL_PAYMENT = "pretix.plugins.manualpayment"
LOCK_KEY = zlib.crc32(b"pretix-cluster-shop-setup")
EVENT_DAYS_AHEAD = 60  # a new (or too close) event is dated this far in the future
EVENT_MIN_DAYS_AHEAD = 7
EVENT_HOURS = 6
EVENT_SETTINGS: dict[str, Any] = {
    "timezone": "UTC",
    "locale": "en",
    "locales": ["en"],
    "payment_manual__enabled": True,
    "attendee_names_asked": True,
    "attendee_names_required": True,
    "invoice_address_asked": False,
}


@dataclasses.dataclass(frozen=True)
class Params:
    """The host's ShopSetupParams, every field given (its defaults live on the host)."""

    admin_password: str
    quota_size: int
    organizer_slug: str
    organizer_name: str
    event_slug: str
    event_name: str
    currency: str
    item_name: str
    item_price: str
    team_name: str
    token_name: str
    admin_email: str


def main() -> None:
    params = Params(**json.loads(sys.stdin.read()))
    import django

    django.setup()
    from django_scopes import scopes_disabled

    with scopes_disabled():
        result = ensure_shop(params)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def ensure_shop(p: Params) -> dict[str, Any]:
    from django.db import transaction

    changes: list[str] = []
    with transaction.atomic():
        lock_against_concurrent_setup()
        ensure_global_settings(changes)
        admin = ensure_admin(p, changes)
        org = ensure_organizer(p, changes)
        team = ensure_team(org, admin, p, changes)
        token, token_created = ensure_token(team, p, changes)
        event = ensure_event(org, admin, p, changes)
        for key, value in EVENT_SETTINGS.items():
            ensure_setting(event, key, value, "event", changes)
        item = ensure_item(event, p, changes)
        quota = ensure_quota(event, item, p, changes)
        go_live(event, changes)  # last: pretix wants a quota and a payment provider first
        if changes:
            event.cache.clear()
    return {
        "organizer": org.slug,
        "event": event.slug,
        "item_id": item.pk,
        "quota_id": quota.pk,
        "api_token": token.token,
        "api_token_created": token_created,
        "changes": changes,
    }


def lock_against_concurrent_setup() -> None:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as c:
            c.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def ensure_setting(obj, key: str, value: Any, label: str, changes: list[str]) -> None:
    if obj.settings.get(key, as_type=type(value)) != value:
        obj.settings.set(key, value)
        changes.append(f"{label}.settings.{key}={value!r}")


def ensure_global_settings(changes: list[str]) -> None:
    """No phoning home to pretix.eu."""
    from pretix.base.settings import GlobalSettingsObject

    gs = GlobalSettingsObject()
    ensure_setting(gs, "update_check_perform", False, "global", changes)
    ensure_setting(gs, "update_check_ack", True, "global", changes)


def ensure_admin(p: Params, changes: list[str]):
    """The admin user pretix's migrations created, with our password and no forced change."""
    from pretix.base.models import User

    admin = User.objects.get(email=p.admin_email)
    if not admin.check_password(p.admin_password):
        admin.set_password(p.admin_password)
        admin.needs_password_change = False
        admin.save()
        changes.append("admin.password")
    elif admin.needs_password_change:
        admin.needs_password_change = False
        admin.save(update_fields=["needs_password_change"])
        changes.append("admin.needs_password_change")
    return admin


def ensure_organizer(p: Params, changes: list[str]):
    from pretix.base.models import Organizer

    org = Organizer.objects.filter(slug=p.organizer_slug).first()
    if org is None:
        org = Organizer.objects.create(slug=p.organizer_slug, name=p.organizer_name)
        changes.append("organizer.created")
    return org


def ensure_team(org, admin, p: Params, changes: list[str]):
    """A team with every permission on every event, the admin a member of it."""
    from pretix.base.models import Team

    all_permissions = ("all_events", "all_event_permissions", "all_organizer_permissions")
    team = Team.objects.filter(organizer=org, name=p.team_name).first()
    if team is None:
        team = Team.objects.create(
            organizer=org, name=p.team_name, **dict.fromkeys(all_permissions, True)
        )
        changes.append("team.created")
    else:
        missing = [f for f in all_permissions if not getattr(team, f)]
        for f in missing:
            setattr(team, f, True)
        if missing:
            team.save(update_fields=missing)
            changes.append("team.permissions")
    if not team.members.filter(pk=admin.pk).exists():
        team.members.add(admin)
        changes.append("team.member_admin")
    return team


def ensure_token(team, p: Params, changes: list[str]):
    """The team's active API token of our name: (token, created by this run)."""
    from pretix.base.models import TeamAPIToken

    token = team.tokens.filter(name=p.token_name, active=True).order_by("pk").first()
    if token is not None:
        return token, False
    changes.append("token.created")
    return TeamAPIToken.objects.create(team=team, name=p.token_name), True


def ensure_event(org, admin, p: Params, changes: list[str]):
    from pretix.base.models import Event

    event = Event.objects.filter(organizer=org, slug=p.event_slug).first()
    if event is None:
        event = create_event(org, admin, p)
        changes.append("event.created")
    else:
        repair_event(event, changes)
    return event


def future_start(current_time: dt.datetime) -> dt.datetime:
    start = current_time + dt.timedelta(days=EVENT_DAYS_AHEAD)
    return start.replace(hour=18, minute=0, second=0, microsecond=0)


def create_event(org, admin, p: Params):
    """A new event, on sale from an hour ago, with manual payment and a check-in list."""
    from django.conf import settings
    from django.utils.timezone import now
    from i18nfield.strings import LazyI18nString
    from pretix.base.models import Event

    current_time = now()
    start = future_start(current_time)
    event = Event(
        organizer=org,
        slug=p.event_slug,
        name=LazyI18nString({"en": p.event_name}),
        currency=p.currency,
        date_from=start,
        date_to=start + dt.timedelta(hours=EVENT_HOURS),
        presale_start=current_time - dt.timedelta(hours=1),
        presale_end=None,
        live=False,
        testmode=False,
    )
    event.save()
    plugins = [x for x in settings.PRETIX_PLUGINS_DEFAULT.split(",") if x]
    plugins.append(MANUAL_PAYMENT)
    event.set_active_plugins(plugins, allow_restricted=plugins)
    event.save(update_fields=["plugins"])
    event.checkin_lists.create(name="Default", all_products=True)
    event.set_defaults()
    event.log_action("pretix.event.added", user=admin)
    return event


def repair_event(event, changes: list[str]) -> None:
    """Keep an existing event on sale: date ahead, presale open, not in test mode."""
    from django.utils.timezone import now

    current_time = now()
    fixed = []
    if event.date_from is None or event.date_from < current_time + dt.timedelta(
        days=EVENT_MIN_DAYS_AHEAD
    ):
        start = future_start(current_time)
        event.date_from, event.date_to = start, start + dt.timedelta(hours=EVENT_HOURS)
        fixed += ["date_from", "date_to"]
    if event.presale_start and event.presale_start > current_time:
        event.presale_start = current_time - dt.timedelta(hours=1)
        fixed.append("presale_start")
    if event.presale_end and event.presale_end < event.date_from:
        event.presale_end = None
        fixed.append("presale_end")
    if event.testmode:
        event.testmode = False
        fixed.append("testmode")
    if fixed:
        event.save(update_fields=fixed)
        changes.append("event." + ",".join(fixed))
    if MANUAL_PAYMENT not in event.get_plugins():
        event.enable_plugin(MANUAL_PAYMENT)
        event.save(update_fields=["plugins"])
        changes.append("event.plugin_manualpayment")


def ensure_item(event, p: Params, changes: list[str]):
    """The one admission ticket, personalized, at ``item_price``."""
    from i18nfield.strings import LazyI18nString
    from pretix.base.models import Item

    price = Decimal(p.item_price).quantize(Decimal("0.01"))
    item = Item.objects.filter(event=event, internal_name=ITEM_INTERNAL_NAME).first()
    if item is None:
        item = Item.objects.create(
            event=event,
            name=LazyI18nString({"en": p.item_name}),
            internal_name=ITEM_INTERNAL_NAME,
            default_price=price,
            admission=True,
            personalized=True,
            active=True,
        )
        changes.append("item.created")
        return item
    updated = []
    if item.default_price != price:
        item.default_price = price
        updated.append("default_price")
    for f in ("admission", "personalized", "active", "all_sales_channels"):
        if not getattr(item, f):
            setattr(item, f, True)
            updated.append(f)
    if updated:
        item.save(update_fields=updated)
        changes.append("item." + ",".join(updated))
    return item


def ensure_quota(event, item, p: Params, changes: list[str]):
    """One quota of ``quota_size`` holding the item."""
    from pretix.base.models import Quota

    size = int(p.quota_size)
    quota = Quota.objects.filter(event=event, name=QUOTA_NAME).first()
    if quota is None:
        quota = Quota.objects.create(event=event, name=QUOTA_NAME, size=size)
        changes.append("quota.created")
    elif quota.size != size:
        quota.size = size
        quota.save(update_fields=["size"])
        changes.append(f"quota.size={quota.size}")
    if not quota.items.filter(pk=item.pk).exists():
        quota.items.add(item)
        changes.append("quota.item")
    return quota


def go_live(event, changes: list[str]) -> None:
    if not event.live:
        event.live = True
        event.save(update_fields=["live"])
        changes.append("event.live")


if __name__ == "__main__":
    main()
