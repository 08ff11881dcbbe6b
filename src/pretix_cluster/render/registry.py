"""The managed registry (`[images] registry = "managed"`) as data: its stack, config and trust.

Debian's docker-registry runs as a stack of its own, ``<stack>-registry``, on
one node (a node label): its data stays on that node's volume, and it is up
before the cluster's images are pushed. It speaks TLS with a certificate from
the tool's local CA (tls.py) and wants a password for pushes and pulls: the
certificate is a Docker config, its key and the password are Docker secrets;
the image makes its htpasswd file (bcrypt) from the password when it starts.
Each node's daemon trusts it through ``/etc/docker/certs.d/<address>/ca.crt``
(read per connection, no restart): `trust_command` is that one line.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import yaml

from pretix_cluster.render.configs import ClusterFile
from pretix_cluster.render.placement import label_constraint, member_label
from pretix_cluster.render.stack import ROLE_LABEL, STACK_VERSION, secret
from pretix_cluster.spec import ClusterSpec

SERVICE = "registry"
USER = "pretix-cluster"  # the one account of the htpasswd file
REGISTRY_UID = "995"  # images/docker-registry/Dockerfile
CONTAINER_PORT = 5000
DATA_DIR = "/var/lib/docker-registry"
CONFIG_FILE = "registry.yml"
CERT_FILE = "registry.crt"
KEY_FILE = "registry.key"
PASSWORD_FILE = "registry_password"  # the secret's name is the image's /run/secrets path
CONFIG_DIR = "/etc/pretix-cluster"
HTPASSWD_PATH = "/run/docker-registry/htpasswd"  # written by the image's registry-serve
CERTS_D = "/etc/docker/certs.d"


def stack_name(spec: ClusterSpec) -> str:
    return f"{spec.stack}-registry"


def node_label(spec: ClusterSpec) -> str:
    """The label of the node that holds the registry (and its data volume)."""
    return member_label(stack_name(spec), SERVICE)


@dataclass(frozen=True)
class RegistryAddress:
    """Where the managed registry answers: a node's address and the spec's port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def registry_config() -> dict:
    """docker-registry's config.yml: TLS, htpasswd, storage on the volume."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "fields": {"service": SERVICE}},
        "storage": {
            "cache": {"blobdescriptor": "inmemory"},
            "filesystem": {"rootdirectory": DATA_DIR},
        },
        "auth": {"htpasswd": {"realm": "pretix-cluster", "path": HTPASSWD_PATH}},
        "http": {
            "addr": f":{CONTAINER_PORT}",
            "tls": {
                "certificate": f"{CONFIG_DIR}/{CERT_FILE}",
                "key": f"/run/secrets/{KEY_FILE}",
            },
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }


def registry_files(cert_pem: bytes, key_pem: bytes, password: str) -> dict[str, ClusterFile]:
    """The config and certificate (Docker configs), the key and password (Docker secrets)."""
    files = [
        ClusterFile(CONFIG_FILE, yaml.safe_dump(registry_config(), sort_keys=False), False),
        ClusterFile(CERT_FILE, cert_pem.decode(), False),
        ClusterFile(KEY_FILE, key_pem.decode(), True),
        ClusterFile(PASSWORD_FILE, password, True),
    ]
    return {f.name: f for f in files}


def registry_stack(spec: ClusterSpec, image: str, files: dict[str, ClusterFile]) -> dict:
    """The stack ``<stack>-registry``: one task on the labelled node, its port in host mode."""
    stack = stack_name(spec)
    config_mounts = [
        {"source": name, "target": f"{CONFIG_DIR}/{name}", "uid": REGISTRY_UID, "mode": 0o444}
        for name in (CONFIG_FILE, CERT_FILE)
    ]
    service = {
        "image": image,
        "command": [f"{CONFIG_DIR}/{CONFIG_FILE}", USER],
        "ports": [
            {
                "target": CONTAINER_PORT,
                "published": spec.images.registry_port,
                "protocol": "tcp",
                "mode": "host",
            }
        ],
        "volumes": [f"data:{DATA_DIR}"],
        "configs": config_mounts,
        "secrets": [secret(KEY_FILE, REGISTRY_UID), secret(PASSWORD_FILE, REGISTRY_UID)],
        # No health check: a TCP connect (the image has no HTTP client) timed out under a
        # push's load and Swarm killed the registry mid-push (lab, 2026-12-06); Swarm
        # restarts it when it exits, and `up` waits for its HTTPS answer itself.
        "deploy": {
            "mode": "replicated",
            "replicas": 1,
            "labels": {ROLE_LABEL: SERVICE},
            "placement": {"constraints": [label_constraint(node_label(spec))]},
            "restart_policy": {"condition": "any", "delay": "2s", "window": "30s"},
            # One volume: the old task stops before the new one opens it.
            "update_config": {"parallelism": 1, "order": "stop-first"},
        },
    }
    return {
        "version": STACK_VERSION,
        "services": {SERVICE: service},
        "volumes": {"data": {}},
        "secrets": _external(stack, files, secret=True),
        "configs": _external(stack, files, secret=False),
    }


def _external(stack: str, files: dict[str, ClusterFile], secret: bool) -> dict:
    return {
        f.name: {"external": True, "name": f.object_name(stack)}
        for f in files.values()
        if f.secret == secret
    }


def trust_command(address: RegistryAddress, ca_pem: bytes) -> str:
    """One shell line for root on each node: its daemon then trusts the registry's certificate.

    The CA certificate travels inside the line (base64), so the operator copies
    nothing else; it is public, not a secret.
    """
    directory = f"{CERTS_D}/{address}"
    encoded = base64.b64encode(ca_pem).decode()
    return f"mkdir -p {directory} && echo {encoded} | base64 -d > {directory}/ca.crt"


def docker_cli_config(address: RegistryAddress, password: str) -> str:
    """config.json of a temporary DOCKER_CONFIG: `docker stack deploy --with-registry-auth`
    reads the registry's login from there (never from a command line or the environment)."""
    auth = base64.b64encode(f"{USER}:{password}".encode()).decode()
    return json.dumps({"auths": {str(address): {"auth": auth}}})


def auth_config(password: str) -> dict[str, str]:
    """The login the SDK sends with a push or pull (the X-Registry-Auth header)."""
    return {"username": USER, "password": password}
