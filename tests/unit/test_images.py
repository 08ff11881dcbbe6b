"""Image tags: computed without a Docker daemon, changed by what really changes an image."""

import yaml
from typer.testing import CliRunner

from pretix_cluster.cli import app
from pretix_cluster.images import base
from pretix_cluster.images.build import COMPONENTS, find_ca_bundle, planned_tags

DEAD_DOCKER = "unix:///nonexistent/docker.sock"


def test_render_prints_the_stack_with_no_docker_daemon(tmp_path):
    spec_file = tmp_path / "cluster.toml"
    spec_file.write_text('[cluster]\nname = "nodaemon"\n')
    result = CliRunner().invoke(
        app, ["render", "--spec", str(spec_file)], env={"DOCKER_HOST": DEAD_DOCKER}
    )
    assert result.exit_code == 0, result.output
    stack = yaml.safe_load(result.stdout)
    tags = planned_tags("debian:bookworm-slim", find_ca_bundle())
    assert stack["services"]["redis-1"]["image"] == tags["redis"]
    assert stack["services"]["web"]["image"] == tags["pretix"]


def test_the_same_inputs_give_the_same_tags():
    assert planned_tags("debian:bookworm-slim", None) == planned_tags("debian:bookworm-slim", None)


def test_another_base_image_changes_every_tag():
    bookworm = planned_tags("debian:bookworm-slim", None).tags
    trixie = planned_tags("debian:trixie-slim", None).tags
    assert all(bookworm[c] != trixie[c] for c in COMPONENTS)


def test_another_debian_suite_for_the_base_changes_every_tag(monkeypatch):
    bookworm = planned_tags("debian:bookworm-slim", None).tags
    monkeypatch.setattr(base, "SUITE", "trixie")
    trixie = planned_tags("debian:bookworm-slim", None).tags
    assert all(bookworm[c] != trixie[c] for c in COMPONENTS)


def test_the_debian_mirror_does_not_change_a_tag(monkeypatch):
    before = planned_tags("debian:bookworm-slim", None)
    monkeypatch.setenv("PRETIX_CLUSTER_DEBIAN_MIRROR", "http://mirror.example.org/debian")
    assert planned_tags("debian:bookworm-slim", None) == before
