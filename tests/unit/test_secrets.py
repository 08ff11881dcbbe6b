"""Generated secrets are random, private, stable across runs."""

import re
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


# A real secret file's content: the names Docker shows must reveal none of it.
PRETIX_CFG = (
    "[database]\npassword=Zq8vK2mXw4pL7nR1tY6uB3sD\n[redis]\nlocation=redis://:h9Jc5Ge0Wf@haproxy\n"
)


def slices(text: str, size: int = 8) -> set[str]:
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def test_a_versioned_name_reveals_no_part_of_the_content():
    name = versioned_name("pretix", "pretix.cfg", PRETIX_CFG)
    assert re.fullmatch(r"pretix_pretix_cfg_[0-9a-f]{12}", name), name
    assert not any(part in name for part in slices(PRETIX_CFG))


def test_a_versioned_name_is_stable_and_changes_with_the_content():
    name = versioned_name("pretix", "pretix.cfg", PRETIX_CFG)
    assert versioned_name("pretix", "pretix.cfg", PRETIX_CFG) == name
    rotated = PRETIX_CFG.replace("Zq8vK2mXw4pL7nR1tY6uB3sD", "Zq8vK2mXw4pL7nR1tY6uB3sE")
    assert versioned_name("pretix", "pretix.cfg", rotated) != name
    assert versioned_name("pctest", "pretix.cfg", PRETIX_CFG).startswith("pctest_pretix_cfg_")
