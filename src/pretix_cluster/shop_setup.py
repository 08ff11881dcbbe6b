"""Bootstrap of the demo shop, run inside a pretix container.

Host side (this module imported normally)::

    from pretix_cluster.shop_setup import ShopSetupParams, docker_exec_fn, run_shop_setup
    params = ShopSetupParams(admin_password="...", quota_size=10000)
    result = run_shop_setup(docker_exec_fn("pretix_web.1.xyz"), params)
    result.api_token, result.item_id, result.quota_id

The whole source of this file plus the parameters travel as one JSON document on
the container's *stdin*; the command line is a constant bootstrap with no secrets::

    docker exec -i <container> /opt/pretix/venv/bin/python -c "<BOOTSTRAP>"

Inside the container the bootstrap execs this source and calls
:func:`container_main`, which runs ``django.setup()`` (the image's
DJANGO_SETTINGS_MODULE and PRETIX_CONFIG_FILE) with django-scopes disabled,
exactly what ``python -m pretix shell_scoped --override`` would do, and prints
ONE JSON line on stdout.  (``shell``/``shell_scoped`` read a script from stdin
only if it is already readable when they start, and fall back to an
interactive REPL otherwise, so they are not used.)

Idempotent: everything is "ensure" (get, compare, create/update only on
difference) inside one transaction guarded by a PostgreSQL advisory lock.  A
second run with the same parameters changes nothing and reports ``changes: []``.

Ensured state:
  * global: pretix's update check off (it would call pretix.eu);
  * user ``admin@localhost``: password = ``admin_password``, no forced change;
  * organizer ``demo``; team (all events, all permissions) with the admin as
    member and one active TeamAPIToken named ``pretix-cluster``;
  * event ``tickets``: live, not in test mode, presale open now, event date in
    the future (moved forward again when it comes closer than 7 days), plugin
    ``pretix.plugins.manualpayment`` on and the "manual" payment provider
    enabled (orders are created as *pending* and can be marked paid), attendee
    names asked and required, no invoice address asked;
  * one admission item (price ``item_price``), one quota of ``quota_size`` with
    that item.

API token policy: the token is stored in clear text in pretix's database, so it
is always read back and printed (``api_token_created`` tells whether this run
made it).  Store it like a password (0600).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

PYTHON_IN_IMAGE = "/opt/pretix/venv/bin/python"

# Constant, secret-free command line.  stdin: {"script": <this file>, "params": {...}}
BOOTSTRAP = (
    "import json,sys,types;"
    "d=json.loads(sys.stdin.read());"
    "m=types.ModuleType('pretix_cluster_shop_setup_remote');"
    "sys.modules[m.__name__]=m;"
    "exec(compile(d['script'],'shop_setup.py','exec'),m.__dict__);"
    "m.container_main(d['params'])"
)

ExecResult = Union[tuple[int, bytes, bytes], "subprocess.CompletedProcess[bytes]"]
ExecFn = Callable[[Sequence[str], bytes], ExecResult]


class ShopSetupError(RuntimeError):
    """The bootstrap failed inside the container (message carries stderr's tail)."""


@dataclasses.dataclass
class ShopSetupParams:
    admin_password: str
    quota_size: int = 10000
    organizer_slug: str = "demo"
    organizer_name: str = "Demo Organizer"
    event_slug: str = "tickets"
    event_name: str = "Demo Tickets"
    currency: str = "EUR"
    item_name: str = "Ticket"
    item_price: str = "10.00"
    team_name: str = "pretix-cluster"
    token_name: str = "pretix-cluster"
    admin_email: str = "admin@localhost"

    def validate(self) -> None:
        if not self.admin_password or "\n" in self.admin_password:
            raise ValueError("admin_password must be a non-empty single line")
        if int(self.quota_size) < 0:
            raise ValueError("quota_size must be >= 0")
        for f in ("organizer_slug", "event_slug"):
            v = getattr(self, f)
            if not v or not all(c.isalnum() or c in "-." for c in v):
                raise ValueError(f"{f} must be a non-empty slug (letters, digits, '-', '.')")


@dataclasses.dataclass
class ShopSetupResult:
    organizer: str
    event: str
    item_id: int
    quota_id: int
    api_token: str
    api_token_created: bool = False
    changes: list = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- host side


def build_command() -> list:
    """argv to run in the container (no secrets in it)."""
    return [PYTHON_IN_IMAGE, "-c", BOOTSTRAP]


def build_payload(params: ShopSetupParams | Mapping[str, Any]) -> bytes:
    """stdin for :func:`build_command`: this module's source and the parameters as JSON."""
    if not isinstance(params, ShopSetupParams):
        params = ShopSetupParams(**dict(params))
    params.validate()
    script = Path(__file__).read_text(encoding="utf-8")
    return json.dumps({"script": script, "params": dataclasses.asdict(params)}).encode("utf-8")


def parse_output(stdout: bytes | str) -> ShopSetupResult:
    """Find the result JSON line (the last stdout line that is a JSON object with 'organizer')."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "organizer" in data:
            fields = {f.name for f in dataclasses.fields(ShopSetupResult)}
            return ShopSetupResult(**{k: v for k, v in data.items() if k in fields})
    raise ShopSetupError(f"no result line in shop_setup output: {text[-500:]!r}")


def run_shop_setup(exec_fn: ExecFn, params: ShopSetupParams | Mapping[str, Any]) -> ShopSetupResult:
    """Run the shop bootstrap in a pretix container and return its result.

    ``exec_fn(argv, stdin_bytes)`` runs ``argv`` inside a pretix container with
    ``stdin_bytes`` on its standard input (e.g. ``docker exec -i <container> ...``,
    see :func:`docker_exec_fn`) and returns ``(returncode, stdout, stderr)`` or a
    ``subprocess.CompletedProcess``.  ``params`` is a :class:`ShopSetupParams` or a
    dict of its fields (``admin_password`` required; ``quota_size`` default 10000).

    Raises :class:`ShopSetupError` on a non-zero exit or a missing result line.
    Safe to call repeatedly: a second call changes nothing (``result.changes == []``)
    and returns the same ids and token.
    """
    res = exec_fn(build_command(), build_payload(params))
    if isinstance(res, subprocess.CompletedProcess):
        rc, out, err = res.returncode, res.stdout, res.stderr
    else:
        rc, out, err = res
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    if rc != 0:
        raise ShopSetupError(f"shop_setup exited {rc}: {(err or '')[-2000:]}")
    return parse_output(out)


def docker_exec_fn(
    container: str, *, docker: str = "docker", timeout: float = 300.0, user: str | None = None
) -> ExecFn:
    """An ``exec_fn`` running ``docker exec -i [--user U] <container> argv`` with stdin."""

    def _exec(argv: Sequence[str], stdin: bytes) -> tuple[int, bytes, bytes]:
        cmd = [docker, "exec", "-i"]
        if user:
            cmd += ["--user", user]
        cmd += [container, *argv]
        p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)
        return p.returncode, p.stdout, p.stderr

    return _exec


# --------------------------------------------------------------------------- container side


def container_main(params: Mapping[str, Any]) -> None:
    """Entry point inside the pretix container (called by BOOTSTRAP)."""
    import django

    django.setup()
    from django_scopes import scopes_disabled

    with scopes_disabled():
        result = _ensure_shop(ShopSetupParams(**dict(params)))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def _ensure_shop(p: ShopSetupParams) -> dict:  # pragma: no cover - runs inside pretix
    import datetime as dt
    import zlib
    from decimal import Decimal

    from django.conf import settings
    from django.db import connection, transaction
    from django.utils.timezone import now
    from i18nfield.strings import LazyI18nString
    from pretix.base.models import (
        Event,
        Item,
        Organizer,
        Quota,
        Team,
        TeamAPIToken,
        User,
    )
    from pretix.base.settings import GlobalSettingsObject

    p.validate()
    changes = []
    token_created = False
    price = Decimal(p.item_price).quantize(Decimal("0.01"))

    def ensure_setting(obj, key, value, label):
        current = obj.settings.get(key, as_type=type(value))
        if current != value:
            obj.settings.set(key, value)
            changes.append(f"{label}.settings.{key}={value!r}")

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as c:
                c.execute(
                    "SELECT pg_advisory_xact_lock(%s)", [zlib.crc32(b"pretix-cluster-shop-setup")]
                )

        # -- global settings: no phoning home
        gs = GlobalSettingsObject()
        ensure_setting(gs, "update_check_perform", False, "global")
        ensure_setting(gs, "update_check_ack", True, "global")

        # -- admin user
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

        # -- organizer
        org = Organizer.objects.filter(slug=p.organizer_slug).first()
        if org is None:
            org = Organizer.objects.create(slug=p.organizer_slug, name=p.organizer_name)
            changes.append("organizer.created")

        # -- team + token
        team = Team.objects.filter(organizer=org, name=p.team_name).first()
        if team is None:
            team = Team.objects.create(
                organizer=org,
                name=p.team_name,
                all_events=True,
                all_event_permissions=True,
                all_organizer_permissions=True,
            )
            changes.append("team.created")
        else:
            upd = [
                f
                for f in ("all_events", "all_event_permissions", "all_organizer_permissions")
                if not getattr(team, f)
            ]
            for f in upd:
                setattr(team, f, True)
            if upd:
                team.save(update_fields=upd)
                changes.append("team.permissions")
        if not team.members.filter(pk=admin.pk).exists():
            team.members.add(admin)
            changes.append("team.member_admin")
        token = team.tokens.filter(name=p.token_name, active=True).order_by("pk").first()
        if token is None:
            token = TeamAPIToken.objects.create(team=team, name=p.token_name)
            token_created = True
            changes.append("token.created")

        # -- event
        current_time = now()
        ev = Event.objects.filter(organizer=org, slug=p.event_slug).first()
        if ev is None:
            start = (current_time + dt.timedelta(days=60)).replace(
                hour=18, minute=0, second=0, microsecond=0
            )
            ev = Event(
                organizer=org,
                slug=p.event_slug,
                name=LazyI18nString({"en": p.event_name}),
                currency=p.currency,
                date_from=start,
                date_to=start + dt.timedelta(hours=6),
                presale_start=current_time - dt.timedelta(hours=1),
                presale_end=None,
                live=False,
                testmode=False,
            )
            ev.save()
            plugins = [x for x in settings.PRETIX_PLUGINS_DEFAULT.split(",") if x]
            plugins.append("pretix.plugins.manualpayment")
            ev.set_active_plugins(plugins, allow_restricted=plugins)
            ev.save(update_fields=["plugins"])
            ev.checkin_lists.create(name="Default", all_products=True)
            ev.set_defaults()
            ev.log_action("pretix.event.added", user=admin)
            changes.append("event.created")
        else:
            fix = []
            if ev.date_from is None or ev.date_from < current_time + dt.timedelta(days=7):
                start = (current_time + dt.timedelta(days=60)).replace(
                    hour=18, minute=0, second=0, microsecond=0
                )
                ev.date_from, ev.date_to = start, start + dt.timedelta(hours=6)
                fix += ["date_from", "date_to"]
            if ev.presale_start and ev.presale_start > current_time:
                ev.presale_start = current_time - dt.timedelta(hours=1)
                fix.append("presale_start")
            if ev.presale_end and ev.presale_end < ev.date_from:
                ev.presale_end = None
                fix.append("presale_end")
            if ev.testmode:
                ev.testmode = False
                fix.append("testmode")
            if fix:
                ev.save(update_fields=fix)
                changes.append("event." + ",".join(fix))
            if "pretix.plugins.manualpayment" not in ev.get_plugins():
                ev.enable_plugin("pretix.plugins.manualpayment")
                ev.save(update_fields=["plugins"])
                changes.append("event.plugin_manualpayment")

        ensure_setting(ev, "timezone", "UTC", "event")
        ensure_setting(ev, "locale", "en", "event")
        ensure_setting(ev, "locales", ["en"], "event")
        ensure_setting(ev, "payment_manual__enabled", True, "event")
        ensure_setting(ev, "attendee_names_asked", True, "event")
        ensure_setting(ev, "attendee_names_required", True, "event")
        ensure_setting(ev, "invoice_address_asked", False, "event")

        # -- item
        item = Item.objects.filter(event=ev, internal_name="pretix-cluster-ticket").first()
        if item is None:
            item = Item.objects.create(
                event=ev,
                name=LazyI18nString({"en": p.item_name}),
                internal_name="pretix-cluster-ticket",
                default_price=price,
                admission=True,
                personalized=True,
                active=True,
            )
            changes.append("item.created")
        else:
            upd = []
            if item.default_price != price:
                item.default_price = price
                upd.append("default_price")
            for f in ("admission", "personalized", "active", "all_sales_channels"):
                if not getattr(item, f):
                    setattr(item, f, True)
                    upd.append(f)
            if upd:
                item.save(update_fields=upd)
                changes.append("item." + ",".join(upd))

        # -- quota
        quota = Quota.objects.filter(event=ev, name="pretix-cluster tickets").first()
        if quota is None:
            quota = Quota.objects.create(
                event=ev, name="pretix-cluster tickets", size=int(p.quota_size)
            )
            changes.append("quota.created")
        elif quota.size != int(p.quota_size):
            quota.size = int(p.quota_size)
            quota.save(update_fields=["size"])
            changes.append(f"quota.size={quota.size}")
        if not quota.items.filter(pk=item.pk).exists():
            quota.items.add(item)
            changes.append("quota.item")

        # -- go live last (pretix requires a quota/payment before going live in the UI)
        if not ev.live:
            ev.live = True
            ev.save(update_fields=["live"])
            changes.append("event.live")

        if changes:
            ev.cache.clear()

    return {
        "organizer": org.slug,
        "event": ev.slug,
        "item_id": item.pk,
        "quota_id": quota.pk,
        "api_token": token.token,
        "api_token_created": token_created,
        "changes": changes,
    }


if (
    __name__ == "__main__"
):  # host-side CLI: python -m pretix_cluster.shop_setup <container>  (params JSON on stdin)
    if len(sys.argv) != 2:
        print(
            "usage: python -m pretix_cluster.shop_setup <container>  < params.json", file=sys.stderr
        )
        sys.exit(64)
    _params = json.loads(sys.stdin.read())
    print(json.dumps(run_shop_setup(docker_exec_fn(sys.argv[1]), _params).as_dict()))
