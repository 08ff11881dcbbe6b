"""The lab bridge's subnet and the fixed address of everything on it.

Addresses are fixed, not assigned at start: a swarm manager is known to the
others by its address, so a node that is killed, or removed and recreated on
its old disk, must come back on the same one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pretix_cluster.errors import UserError

# /24s tried in order for a new lab: outside Docker's own default pools' first picks
# (172.17-172.2x/16) and Swarm's overlay pool (10.0.0.0/8).
CANDIDATE_SUPERNET = ipaddress.ip_network("172.30.0.0/16")
SUBNET_PREFIX = 24
REGISTRY_HOST = 2
FIRST_NODE_HOST = 10
MAX_NODES = 9
DOCKER_API_PORT = 2375
REGISTRY_PORT = 5000


@dataclass(frozen=True)
class LabAddresses:
    subnet: ipaddress.IPv4Network

    @classmethod
    def parse(cls, subnet: str) -> LabAddresses:
        try:
            network = ipaddress.ip_network(subnet)
        except ValueError:
            raise UserError(f"'{subnet}' is not a subnet; give one like 172.30.7.0/24.") from None
        if network.version != 4 or network.num_addresses < 2 ** (32 - SUBNET_PREFIX):
            raise UserError(f"The lab subnet {subnet} is too small; give an IPv4 /24 or larger.")
        return cls(network)

    @property
    def gateway(self) -> str:
        """The host's end of the bridge: the only source allowed to reach a node's API."""
        return str(self.subnet.network_address + 1)

    @property
    def registry(self) -> str:
        return str(self.subnet.network_address + REGISTRY_HOST)

    @property
    def registry_address(self) -> str:
        """host:port as nodes name the registry in image names."""
        return f"{self.registry}:{REGISTRY_PORT}"

    def node(self, index: int) -> str:
        return str(self.subnet.network_address + FIRST_NODE_HOST + index)

    def docker_host(self, index: int) -> str:
        return f"tcp://{self.node(index)}:{DOCKER_API_PORT}"


def choose_subnet(taken: Iterable[ipaddress.IPv4Network]) -> LabAddresses:
    """The first candidate /24 that overlaps no Docker network and no route of the host."""
    taken = list(taken)
    for candidate in CANDIDATE_SUPERNET.subnets(new_prefix=SUBNET_PREFIX):
        if not any(candidate.overlaps(other) for other in taken):
            return LabAddresses(candidate)
    raise UserError(
        f"Every /24 of {CANDIDATE_SUPERNET} is in use on this machine; "
        "pass a free one with --subnet."
    )


def host_routes(route_table: Path = Path("/proc/net/route")) -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes (not the default route): subnets a lab must not shadow."""
    if not route_table.exists():
        return []
    return parse_route_table(route_table.read_text())


def parse_route_table(text: str) -> list[ipaddress.IPv4Network]:
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination, mask = _little_endian_ip(fields[1]), _little_endian_ip(fields[7])
        network = ipaddress.ip_network(f"{destination}/{mask}", strict=False)
        if network.prefixlen > 0:
            routes.append(network)
    return routes


def _little_endian_ip(hex_text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(hex_text), "little"))
