"""One cluster as the tool sees it: its spec, its state folder, its Docker objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import docker

from pretix_cluster import shop_tls, swarm
from pretix_cluster.errors import UserError
from pretix_cluster.images import build
from pretix_cluster.images.registry import as_pulled
from pretix_cluster.render import placement
from pretix_cluster.render import registry as registry_render
from pretix_cluster.render.configs import ClusterFile
from pretix_cluster.render.stack import dump_stack
from pretix_cluster.render.topology import HA, Topology
from pretix_cluster.secrets import PROVIDED_NAMES, SecretStore, data_fingerprint
from pretix_cluster.spec import ClusterSpec, load_spec
from pretix_cluster.tls import KeyPair

API_TOKEN_FILE = "pretix_api_token"
# Not secret: where the demo shop is (slugs, ids); read by tests and load tests.
SHOP_INFO_FILE = "shop.json"


@dataclass
class Cluster:
    spec: ClusterSpec
    spec_dir: Path
    ca_file: Path | None = None
    topology: Topology = HA
    # Where this machine pushes when that is not the address nodes pull from (the lab).
    push_via: str | None = None

    @classmethod
    def from_file(cls, spec_file: Path, ca_file: Path | None = None) -> Cluster:
        return cls(load_spec(spec_file), spec_file.resolve().parent, ca_file)

    @property
    def stack(self) -> str:
        return self.spec.stack

    @property
    def state_dir(self) -> Path:
        return self.spec.state_path(self.spec_dir)

    @property
    def secrets(self) -> SecretStore:
        return SecretStore(self.state_dir / "secrets")

    @cached_property
    def client(self) -> docker.DockerClient:
        return swarm.connect()

    @cached_property
    def builder(self) -> docker.DockerClient:
        return swarm.connect_builder()

    def ca_bundle(self) -> Path | None:
        return build.find_ca_bundle(self.ca_file)

    def files(self) -> dict[str, ClusterFile]:
        values = self.secrets.ensure_all() | self.secrets.provided()
        if self.spec.media.kind == "s3":
            missing = [n for n in PROVIDED_NAMES if n not in values]
            if missing:
                where = " and ".join(str(self.secrets.path(n)) for n in missing)
                raise UserError(
                    f'[media] kind = "s3" needs the bucket\'s credentials: write them to '
                    f"{where} (mode 0600, one value each), then run the command again."
                )
        return self.topology.files(self.spec, values, self.edge_pair)

    @cached_property
    def edge_pair(self) -> KeyPair | None:
        """nginx's certificate and key (None: an http URL); an unusable one is a UserError."""
        return shop_tls.edge_pair(self.spec, self.spec_dir)

    def shop_trust(self) -> shop_tls.ShopTrust:
        """What this machine's clients verify the shop's certificate against."""
        return shop_tls.ShopTrust.of(self.spec, self.spec_dir)

    def images(self) -> build.ImageSet:
        """The names the stack runs: this machine's tags, or the registry's when there is one."""
        planned = build.planned_tags(self.spec.images.base, self.ca_bundle())
        if self.spec.images.managed:
            return as_pulled(planned, str(self.managed_registry_address()))
        registry = self.spec.images.registry
        return as_pulled(planned, registry) if registry else planned

    def managed_registry_node(self) -> placement.Node:
        """The node holding the managed registry's label (its data), else the manager the
        tool talks to, where `up` puts it."""
        label = registry_render.node_label(self.spec)
        nodes = swarm.nodes(self.client)
        labelled = [n for n in nodes if n.labels.get(label) == "true"]
        if labelled:
            return labelled[0]
        own = self.client.info().get("Swarm", {}).get("NodeID", "")
        return next(n for n in nodes if n.id == own)

    def managed_registry_address(self) -> registry_render.RegistryAddress:
        node = self.managed_registry_node()
        return registry_render.RegistryAddress(node.address, self.spec.images.registry_port)

    def stack_document(self, images: build.ImageSet, files: dict[str, ClusterFile]) -> dict:
        return self.topology.stack(self.spec, images, files, self.data_fingerprint())

    def data_fingerprint(self) -> str:
        """The fingerprint of the secrets this state folder gives the data volumes."""
        return data_fingerprint(self.secrets.ensure_all())

    def stack_yaml(self, images: build.ImageSet, files: dict[str, ClusterFile]) -> str:
        return dump_stack(self.stack_document(images, files))

    def data_tier(self) -> set[str]:
        """The services that must be healthy before migrations run."""
        return {self.spec.service_name(n) for n in self.topology.data_tier(self.spec)}

    def shop_info(self) -> dict:
        path = self.state_dir / SHOP_INFO_FILE
        if not path.exists():
            raise UserError(f"{path} is missing: the demo shop is not set up; run `up`.")
        return json.loads(path.read_text())

    def write_shop_info(self, info: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / SHOP_INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")

    def api_token(self) -> str | None:
        path = self.secrets.path(API_TOKEN_FILE)
        return path.read_text().strip() if path.exists() else None
