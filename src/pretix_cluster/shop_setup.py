"""The demo shop's parameters and result; the work runs inside a pretix container.

The pretix image carries the script (``images/pretix/shop_setup.py``, installed
at :data:`SCRIPT_IN_IMAGE`) that ensures organizer, event, item, quota, team
and API token through pretix's ORM. This side sends it the parameters as JSON
on stdin, so the admin password is never on a command line or in the
environment, and parses the one JSON result line it prints.
"""

from __future__ import annotations

import dataclasses
import json

from docker.models.containers import Container

from pretix_cluster import swarm

PYTHON_IN_IMAGE = "/opt/pretix/venv/bin/python"
SCRIPT_IN_IMAGE = "/usr/local/lib/pretix-cluster/shop_setup.py"
COMMAND = [PYTHON_IN_IMAGE, SCRIPT_IN_IMAGE]
TIMEOUT_S = 300


class ShopSetupError(RuntimeError):
    """The setup failed inside the container (the message carries its output's tail)."""


@dataclasses.dataclass(frozen=True)
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
        for name in ("organizer_slug", "event_slug"):
            value = getattr(self, name)
            if not value or not all(c.isalnum() or c in "-." for c in value):
                raise ValueError(f"{name} must be a non-empty slug (letters, digits, '-', '.')")

    def to_json(self) -> str:
        self.validate()
        return json.dumps(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class ShopSetupResult:
    organizer: str
    event: str
    item_id: int
    quota_id: int
    api_token: str
    api_token_created: bool = False
    changes: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_output(cls, output: str) -> ShopSetupResult:
        """The result line: the last output line that is a JSON object with every field of
        a result (pretix may log to the same stream around it)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        for line in reversed(output.splitlines()):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and fields <= data.keys():
                return cls(**{k: data[k] for k in fields})
        raise ShopSetupError(f"no result line in the shop setup's output: {output[-500:]!r}")


def run_shop_setup(container: Container, params: ShopSetupParams) -> ShopSetupResult:
    """Ensure the demo shop through ``container`` (a running pretix container).

    Safe to call repeatedly: a second call changes nothing (``result.changes == []``)
    and returns the same ids and token.
    """
    rc, output = swarm.exec_in(container, COMMAND, stdin=params.to_json(), timeout=TIMEOUT_S)
    if rc != 0:
        raise ShopSetupError(f"the shop setup exited {rc}: {output[-2000:]}")
    return ShopSetupResult.from_output(output)
