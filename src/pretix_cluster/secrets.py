"""Generated passwords and keys, kept 0600 in the cluster's state folder.

Values are made once, on the first `up`, and reused ever after: regenerating a
password of a running database would lock pretix out. They reach containers only
as Docker secrets (files under /run/secrets), never as env vars or arguments.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

# Every value the cluster needs, with the number of random bytes behind it.
SECRET_NAMES: dict[str, int] = {
    "django_secret": 48,
    "pg_superuser_password": 24,
    "pg_replication_password": 24,
    "pg_rewind_password": 24,
    "pg_pretix_password": 24,
    "patroni_restapi_password": 24,
    "redis_password": 24,
    "etcd_root_password": 24,
    "etcd_patroni_password": 24,
    "haproxy_stats_password": 24,
    "pretix_admin_password": 18,
    "metrics_passphrase": 24,
    # Signs the waiting room's cookies (nginx): a buyer cannot forge admission or a place.
    "waiting_room_key": 32,
    # Pushes and pulls of the managed registry ([images] registry = "managed").
    "registry_password": 24,
}
# The values that data volumes keep (PostgreSQL's roles, etcd's users): new ones
# would lock the cluster out of its own data.
DATA_SECRET_NAMES = (
    "pg_superuser_password",
    "pg_replication_password",
    "pg_rewind_password",
    "pg_pretix_password",
    "etcd_root_password",
    "etcd_patroni_password",
)
# Values only the operator can give (an S3 bucket's credentials): read, never generated.
PROVIDED_NAMES = ("s3_access_key", "s3_secret_key")


@dataclass(frozen=True)
class SecretStore:
    """The state folder's `secrets/` directory: one file per value, mode 0600."""

    directory: Path

    def ensure_all(self) -> dict[str, str]:
        """Create what is missing, return every value (existing ones untouched)."""
        self._ensure_private_directory()
        return {name: self._ensure(name, size) for name, size in SECRET_NAMES.items()}

    def provided(self) -> dict[str, str]:
        """The operator's values that exist (PROVIDED_NAMES)."""
        return {name: self.get(name) for name in PROVIDED_NAMES if self.path(name).exists()}

    def get(self, name: str) -> str:
        return (self.directory / name).read_text().strip()

    def path(self, name: str) -> Path:
        return self.directory / name

    def write(self, name: str, value: str) -> Path:
        """Store a value the cluster handed back (e.g. the API token), 0600 from the start."""
        self._ensure_private_directory()
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        return path

    def _ensure(self, name: str, size: int) -> str:
        path = self.directory / name
        if path.exists():
            return path.read_text().strip()
        # urlsafe: no quoting problems in URLs (redis://:pw@...), YAML or SQL literals.
        value = secrets.token_urlsafe(size)
        self.write(name, value)
        return value

    def _ensure_private_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)


def data_fingerprint(values: dict[str, str]) -> str:
    """A hash of the values data volumes keep: equal for the same secrets, revealing none.

    Each value is high-entropy and the names are part of the hash, so the
    fingerprint can be shown (a volume label) without helping anyone guess a value.
    """
    digest = hashlib.sha256()
    for name in DATA_SECRET_NAMES:
        digest.update(f"{name}={values.get(name, '')}\n".encode())
    return digest.hexdigest()[:16]


def versioned_name(stack: str, name: str, content: str) -> str:
    """Docker secrets and configs are immutable: a changed content needs a new name.

    The suffix is a truncated hash of the content; it reveals nothing of a
    high-entropy secret and lets an unchanged `up` reuse the existing object.
    """
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    return f"{stack}_{name.replace('.', '_')}_{digest}"
