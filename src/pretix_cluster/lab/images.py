"""The lab's own images: its machines' (lab/node-image) and the registry's (images/).

Both are built by images/build.py the way the cluster's images are, with a
content-hash tag, so an unchanged `lab up` finds them and builds nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker

from pretix_cluster.images import build

LAB_DIR = Path(__file__).parent
NODE_IMAGE = "lab-node"
BASE_IMAGE = "debian:bookworm-slim"

Progress = Callable[[str], None]


def ensure_lab_images(
    client: docker.DockerClient, progress: Progress, base_image: str = BASE_IMAGE
) -> tuple[str, str]:
    """(node tag, registry tag), each built only when its tag is missing."""
    ca = build.find_ca_bundle()
    node = build.ensure_directory_image(
        client, NODE_IMAGE, LAB_DIR / "node-image", base_image, ca, progress
    )
    return node, build.docker_registry_image(client, base_image, ca, progress)
