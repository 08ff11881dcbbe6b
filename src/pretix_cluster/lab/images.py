"""The lab's own images (node, registry), built from the project's base image.

Tags are content hashes the way images/build.py makes them (base image id,
build arguments, every file of the image's directory), so an unchanged
`lab up` finds its images and builds nothing. images/build.py hashes and
builds only the directories next to it, hence this small generalisation;
`build_directory_image` could move there as a public helper.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from pretix_cluster.errors import UserError
from pretix_cluster.images import base
from pretix_cluster.images.build import IMAGE_PREFIX

LAB_DIR = Path(__file__).parent
NODE_IMAGE = "lab-node"
REGISTRY_IMAGE = "lab-registry"
BASE_IMAGE = "debian:bookworm-slim"

Progress = Callable[[str], None]


def content_tag(repository: str, directory: Path, base_id: str, args: dict[str, str]) -> str:
    digest = hashlib.sha256()
    digest.update(base_id.encode())
    for key in sorted(args):
        digest.update(f"{key}={args[key]}".encode())
    for path in sorted(directory.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(directory)).encode())
            digest.update(path.read_bytes())
    return f"{IMAGE_PREFIX}/{repository}:{digest.hexdigest()[:12]}"


def ensure_lab_images(
    client: docker.DockerClient, progress: Progress, base_image: str = BASE_IMAGE
) -> tuple[str, str]:
    """(node tag, registry tag), each built only when its tag is missing."""
    base.ensure_base_image(client, base_image, progress)
    return (
        build_directory_image(client, NODE_IMAGE, LAB_DIR / "node-image", base_image, progress),
        build_directory_image(
            client, REGISTRY_IMAGE, LAB_DIR / "registry-image", base_image, progress
        ),
    )


def build_directory_image(
    client: docker.DockerClient,
    repository: str,
    directory: Path,
    base_image: str,
    progress: Progress,
) -> str:
    args = {"BASE_IMAGE": base_image}
    tag = content_tag(repository, directory, base.image_id(client, base_image), args)
    if base.image_id(client, tag) != "absent":
        progress(f"{repository}: up to date ({tag})")
        return tag
    progress(f"{repository}: building {tag}")
    try:
        for chunk in client.api.build(
            path=str(directory), tag=tag, buildargs=args, rm=True, forcerm=True, decode=True
        ):
            if "error" in chunk:
                raise UserError(
                    f"Building the {repository} image failed: {chunk['error'].strip()}; "
                    "fix the cause (often the Debian mirror) and run `lab up` again."
                )
            line = chunk.get("stream", "").strip()
            if line.startswith("Step "):
                progress(f"{repository}: {line}")
    except docker.errors.APIError as exc:
        raise UserError(f"Building the {repository} image failed: {exc}.") from None
    return tag
