"""Every name the lab gives to Docker objects, and the labels that mark them as the lab's.

One lab name (`--name`, default "lab") decides all of them, so a second lab
under another name never meets the first, and anything carrying a lab's name
but not its label belongs to someone else and is never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pretix_cluster.errors import UserError

DEFAULT_LAB = "lab"
LAB_LABEL = "pretix-cluster.lab"
ROLE_LABEL = "pretix-cluster.lab.role"
INDEX_LABEL = "pretix-cluster.lab.node"
NODE_ROLE = "node"
REGISTRY_ROLE = "registry"
NETWORK_ROLE = "network"
# Docker object names allow more, but a lab name also becomes hostnames (node.hostname
# constraints), so it stays a DNS label with room for "-registry".
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}[a-z0-9]$|^[a-z]$")


@dataclass(frozen=True)
class LabNames:
    lab: str

    @classmethod
    def checked(cls, lab: str) -> LabNames:
        if not _NAME.match(lab):
            raise UserError(
                f"'{lab}' cannot name a lab; use lowercase letters, digits and '-' "
                "(a DNS label of at most 42 characters starting with a letter)."
            )
        return cls(lab)

    @property
    def network(self) -> str:
        return self.lab

    def node(self, index: int) -> str:
        """The node's container name, which is also its hostname and its swarm node name."""
        return f"{self.lab}-{index}"

    def disk(self, index: int) -> str:
        return f"{self.lab}-{index}-disk"

    @property
    def registry(self) -> str:
        return f"{self.lab}-registry"

    @property
    def registry_volume(self) -> str:
        return f"{self.lab}-registry-data"

    def labels(self, role: str, index: int | None = None) -> dict[str, str]:
        labels = {LAB_LABEL: self.lab, ROLE_LABEL: role}
        if index is not None:
            labels[INDEX_LABEL] = str(index)
        return labels

    def filters(self, role: str) -> dict[str, list[str]]:
        return {"label": [f"{LAB_LABEL}={self.lab}", f"{ROLE_LABEL}={role}"]}

    def node_index(self, reference: str) -> int:
        """`lab-2` or `2` -> 2; anything else is not a node of this lab's naming."""
        prefix = f"{self.lab}-"
        text = reference.removeprefix(prefix)
        if not text.isdigit() or int(text) < 1:
            raise UserError(
                f"'{reference}' is not a node of lab '{self.lab}'; "
                f"name it as {self.node(1)} (or 1), see `pretix-cluster lab status`."
            )
        return int(text)

    def is_ours(self, labels: dict[str, str] | None, role: str) -> bool:
        labels = labels or {}
        return labels.get(LAB_LABEL) == self.lab and labels.get(ROLE_LABEL) == role
