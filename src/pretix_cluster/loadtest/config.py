"""The parameters of one load run, written once as JSON and read by every Locust process.

The orchestrator and the Locust processes (a headless master, forked workers,
or workers on other machines) must agree on the shop, the scenario, the load
plan and where the ledger goes. One JSON file in the results folder, named by
the environment variable :data:`CONFIG_ENV`, is that agreement. It carries no
secret: the API token is read from its 0600 file (``token_file``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Literal

from pretix_cluster.shop_tls import ShopTrust

CONFIG_ENV = "PRETIX_CLUSTER_LOADTEST_CONFIG"

Scenario = Literal["shop", "api"]
SCENARIOS: tuple[str, ...] = ("shop", "api")


@dataclasses.dataclass
class RetryPolicy:
    """Bounded backoff for busy answers: at most ``max_tries`` per step and ``budget_s`` total."""

    max_tries: int = 6
    base_s: float = 0.5
    cap_s: float = 10.0
    budget_s: float = 60.0


@dataclasses.dataclass
class RunConfig:
    run_id: str
    scenario: Scenario
    base_url: str  # where this machine reaches nginx, e.g. http://127.0.0.1:8080
    host_header: str | None  # the Host pretix expects when it differs from base_url's
    organizer: str
    event: str
    item_id: int
    quota_id: int
    quota_size: int
    ledger_dir: str
    plan: dict[str, Any]  # shapes.Plan.to_dict()
    pace_s: float  # a buyer slot starts a new purchase every pace_s seconds (constant pacing)
    token_file: str | None = None
    public_origin: str | None = None  # scheme://host of the shop URL, for Origin (CSRF)
    # The shop's trust (shop_tls.ShopTrust): the CA file (None: the system's) and its name.
    ca_file: str | None = None
    server_name: str = "127.0.0.1"
    payment_provider: str = "manual"
    fetch_assets: bool = True
    timeout_s: float = 60.0
    poll_timeout_s: float = 120.0
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        data["retry"] = RetryPolicy(**data.get("retry", {}))
        return cls(**data)

    def write(self, path: Path) -> None:
        path.write_text(self.to_json())

    @classmethod
    def read(cls, path: Path) -> RunConfig:
        return cls.from_dict(json.loads(path.read_text()))

    def trust(self) -> ShopTrust:
        return ShopTrust(self.ca_file, self.server_name)

    def api_token(self) -> str:
        if not self.token_file:
            raise RuntimeError("this run has no API token file")
        return Path(self.token_file).read_text().strip()


def config_from_env() -> RunConfig | None:
    """The run's config in a Locust process, or None when started without one."""
    path = os.environ.get(CONFIG_ENV)
    return RunConfig.read(Path(path)) if path else None
