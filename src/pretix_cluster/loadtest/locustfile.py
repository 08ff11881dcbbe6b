"""Locust users and load shape for `pretix-cluster loadtest` (runs inside Locust only).

Started by :mod:`runner` as ``python -m locust -f <this file> ShopBuyer|ApiBuyer``
with the environment variable ``PRETIX_CLUSTER_LOADTEST_CONFIG`` naming the run's
JSON config (:class:`~pretix_cluster.loadtest.config.RunConfig`). Extra load
generators (``--processes N`` forks, or ``--worker --master-host H`` on other
machines) need the same variable and a path the ledger can be written to.

What Locust sees (its request table, CSV and UI):

- ``STEP <name>``: every try of a purchase step (event_page, cart_add,
  checkout_start, questions, payment, confirm, order_page; api_order), with its
  own time, failing with the failure kind;
- ``ASSET static .css`` ...: the event page's subresources through nginx;
- ``RETRY <step> <kind>``: a busy answer that was retried (time = the backoff);
- ``PURCHASE purchase``: the whole purchase, failed only when it finally failed
  (the admitted buyer's time: without the wait in the edge's waiting room);
- ``QUEUE waiting_room``: that wait, once per buyer the waiting room held.

The buyers also append every attempt to the run's ledger (:mod:`ledger`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from locust import LoadTestShape, User, events, task
from locust.runners import WorkerRunner

from pretix_cluster.loadtest import flows
from pretix_cluster.loadtest.config import CONFIG_ENV, config_from_env
from pretix_cluster.loadtest.ledger import TEST_START, LedgerWriter
from pretix_cluster.loadtest.shapes import Plan

CONFIG = config_from_env()
if CONFIG is None:
    raise RuntimeError(f"{CONFIG_ENV} is not set: start load runs with `pretix-cluster loadtest`")
PLAN = Plan.from_dict(CONFIG.plan)
LEDGER = LedgerWriter(CONFIG.ledger_dir)
_TEST_START = [time.time()]  # set again when the test starts, on master and workers
log = logging.getLogger("pretix_cluster.loadtest")
logging.getLogger("httpx").setLevel(logging.WARNING)  # a log line per request costs CPU


class Failure(Exception):
    """A failure kind as Locust shows it: short, so that its failure table groups well."""


class LocustReporter:
    """Turns the flow's reports into Locust request events."""

    def __init__(self, user: User):
        self.fire = user.environment.events.request.fire

    def report(
        self, kind: str, name: str, seconds: float, length: int = 0, error: str | None = None
    ) -> None:
        self.fire(
            request_type=kind,
            name=name,
            response_time=seconds * 1000.0,
            response_length=length,
            exception=Failure(error) if error else None,
            context={},
        )


class _Buyer(User):
    """A buyer slot: one new buyer per purchase, one purchase per pace (see shapes)."""

    abstract = True

    def wait_time(self) -> float:
        """Constant pacing at the current phase's pace (see ``Plan.pace_at``)."""
        pace = PLAN.pace_at(time.time() - _TEST_START[0])
        return max(0.0, pace - (time.monotonic() - self._last_start))

    def on_start(self) -> None:
        self._last_start = time.monotonic()
        self.http = flows.make_client(CONFIG)
        self.reporter = LocustReporter(self)
        self.flow = self.make_flow()

    def make_flow(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def on_stop(self) -> None:
        self.http.close()

    @task
    def purchase(self) -> None:
        self._last_start = time.monotonic()
        identity = flows.Identity.new(CONFIG.run_id)
        try:
            record = self.flow.purchase(identity)
        except BaseException:  # stopped mid-purchase: an ambiguous attempt, on the ledger too
            if self.flow.interrupted is not None:
                LEDGER.write(self.flow.interrupted)
                self.flow.interrupted = None
            raise
        LEDGER.write(record)


class ShopBuyer(_Buyer):
    """The real shop flow, like a browser (see :class:`flows.ShopFlow`)."""

    def make_flow(self) -> flows.ShopFlow:
        return flows.ShopFlow(CONFIG, self.http, self.reporter)


class ApiBuyer(_Buyer):
    """Orders through the REST API with the team token and an idempotency key."""

    def make_flow(self) -> flows.ApiFlow:
        return flows.ApiFlow(CONFIG, self.http, CONFIG.api_token(), self.reporter)


class PlanShape(LoadTestShape):
    """Follows the run's :class:`~pretix_cluster.loadtest.shapes.Plan`; ends the test with it."""

    def tick(self) -> tuple[int, float] | None:
        return PLAN.tick(self.get_run_time())


@events.test_start.add_listener
def _mark_start(environment, **_kw) -> None:
    """t=0 of the shape, for the pacing and the report's phase windows (file: master only)."""
    _TEST_START[0] = time.time()
    if not isinstance(environment.runner, WorkerRunner):
        Path(CONFIG.ledger_dir).mkdir(parents=True, exist_ok=True)
        (Path(CONFIG.ledger_dir) / TEST_START).write_text(f"{time.time():.3f}\n")


@events.quitting.add_listener
def _close_ledger(environment, **_kw) -> None:
    LEDGER.close()
