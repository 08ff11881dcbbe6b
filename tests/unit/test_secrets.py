"""Generated secrets are random, private, stable across runs."""

import stat

from pretix_cluster.secrets import SECRET_NAMES, SecretStore, versioned_name


def test_values_are_created_once_and_kept(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    first = store.ensure_all()
    second = store.ensure_all()
    assert first == second
    assert set(first) == set(SECRET_NAMES)
    assert len(set(first.values())) == len(first)


def test_files_are_private(tmp_path):
    store = SecretStore(tmp_path / "secrets")
    store.ensure_all()
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    for name in SECRET_NAMES:
        assert stat.S_IMODE(store.path(name).stat().st_mode) == 0o600


def test_versioned_names_change_with_content_and_hide_it():
    a = versioned_name("pretix", "pretix.cfg", "secret-a")
    b = versioned_name("pretix", "pretix.cfg", "secret-b")
    assert a != b
    assert a.startswith("pretix_pretix_cfg_")
    assert "secret" not in a.removeprefix("pretix_pretix_cfg_")
