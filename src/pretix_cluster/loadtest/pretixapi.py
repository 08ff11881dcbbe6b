"""The pretix REST API client, over httpx, with the team API token: the only one.

A run sells from its own event, a clone of the demo event made through the
API (``POST /events/{e}/clone/`` copies settings, plugins, the manual payment
provider, items and quotas), so that every order of that event belongs to the
run and a phantom order cannot hide among older ones. Afterwards the same API
lists the event's orders and the quota's availability for the accounting.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from typing import Any

import httpx

PAGE_SIZE = 50  # pretix's max_page_size


class ApiError(RuntimeError):
    """The pretix API answered with an unexpected status."""

    def __init__(self, method: str, path: str, response: httpx.Response):
        self.status = response.status_code
        super().__init__(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")


class PretixApi:
    """Thin REST client bound to one organizer; ``host_header`` when nginx expects another Host."""

    def __init__(
        self,
        base_url: str,
        token: str,
        organizer: str,
        *,
        host_header: str | None = None,
        timeout: float = 60.0,
        verify: ssl.SSLContext | bool = True,
    ):
        headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        if host_header:
            headers["Host"] = host_header
        self.organizer = organizer
        self.http = httpx.Client(
            base_url=base_url.rstrip("/") + f"/api/v1/organizers/{organizer}/",
            headers=headers,
            timeout=timeout,
            verify=verify,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PretixApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise ApiError(method, path, r)
        return r.json() if r.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def paginate(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every result of a list endpoint, page by page (pages are built here, not from
        ``next``, whose host is the public URL's)."""
        page = 1
        while True:
            data = self.get(path, page=page, page_size=PAGE_SIZE, **params)
            yield from data["results"]
            if not data.get("next"):
                return
            page += 1

    # -- the run's event

    def event(self, slug: str) -> dict[str, Any]:
        return self.get(f"events/{slug}/")

    def clone_event(
        self, source: str, slug: str, name: str, *, quota_size: int, item_id: int, quota_id: int
    ) -> dict[str, Any]:
        """Clone ``source`` as ``slug`` with the quota holding ``item_id`` resized, then go live.

        Returns ``{event, item_id, quota_id, quota_size}`` of the new event. pretix
        refuses to create an event as live, so ``live`` is PATCHed afterwards; that
        PATCH runs pretix's own go-live checks (a quota and a payment provider).
        """
        src = self.event(source)
        src_items = {i["id"]: i for i in self.paginate(f"events/{source}/items/")}
        src_quota = self.get(f"events/{source}/quotas/{quota_id}/")
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        body = {
            "name": {"en": name},
            "slug": slug,
            "live": False,
            "testmode": False,
            "currency": src["currency"],
            "date_from": src["date_from"],
            "date_to": src["date_to"],
            "presale_start": (now - dt.timedelta(hours=1)).isoformat(),
            "presale_end": None,
            "is_public": False,
            "has_subevents": False,
            "timezone": src.get("timezone") or "UTC",
        }
        self.request("POST", f"events/{source}/clone/", json=body)
        item = _match(
            self.paginate(f"events/{slug}/items/"), src_items[item_id], ("internal_name", "name")
        )
        quota = _match(self.paginate(f"events/{slug}/quotas/"), src_quota, ("name",))
        self.resize_quota(slug, quota["id"], quota_size)
        self.request("PATCH", f"events/{slug}/", json={"live": True})
        return {
            "event": slug,
            "item_id": item["id"],
            "quota_id": quota["id"],
            "quota_size": int(quota_size),
        }

    def close_event(self, slug: str) -> None:
        """Take a finished run's event offline (its orders stay for inspection)."""
        self.request("PATCH", f"events/{slug}/", json={"live": False})

    def resize_quota(self, event: str, quota_id: int, size: int) -> None:
        self.request("PATCH", f"events/{event}/quotas/{quota_id}/", json={"size": int(size)})

    # -- what the accounting reads

    def orders(self, event: str) -> list[dict[str, Any]]:
        return list(self.paginate(f"events/{event}/orders/"))

    def order(self, event: str, code: str) -> dict[str, Any] | None:
        """One order by its code, None when the event has no such order."""
        try:
            return self.get(f"events/{event}/orders/{code}/")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def quota_availability(self, event: str, quota_id: int) -> dict[str, Any]:
        return self.get(f"events/{event}/quotas/{quota_id}/availability/")


def _match(candidates: Iterator[dict[str, Any]], original: dict[str, Any], keys: tuple[str, ...]):
    """The cloned object that corresponds to ``original`` (same internal name / name)."""
    pool = list(candidates)
    for key in keys:
        if original.get(key):
            found = [c for c in pool if c.get(key) == original[key]]
            if len(found) == 1:
                return found[0]
    if len(pool) == 1:
        return pool[0]
    raise RuntimeError(f"cannot find the clone of {original.get('id')} among {len(pool)} objects")
