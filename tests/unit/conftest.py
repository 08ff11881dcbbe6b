"""Fixtures shared by the rendering tests."""

import pytest

from pretix_cluster.secrets import SecretStore


@pytest.fixture
def values(tmp_path):
    """Every generated secret, fresh for each test."""
    return SecretStore(tmp_path / "secrets").ensure_all()
