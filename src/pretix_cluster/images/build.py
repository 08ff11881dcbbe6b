"""Build the cluster's images from the Dockerfiles next to this module.

An image's tag is a hash of everything that goes into it (its directory, the
base image's content key, the CA bundle, its build arguments), so an unchanged
second build finds every tag present and takes seconds, and a changed file
always rebuilds. Tags are computed without a Docker daemon.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from pretix_cluster.errors import UserError
from pretix_cluster.images import base

IMAGES_DIR = Path(__file__).parent
# nginx copies pretix's compiled static files, so pretix comes first.
COMPONENTS: tuple[str, ...] = ("pretix", "postgres", "etcd", "redis", "haproxy", "nginx")
# Built from this folder on demand, not for every cluster: the managed registry (and the lab's).
DOCKER_REGISTRY = "docker-registry"
IMAGE_PREFIX = "pretix-cluster"
CA_FILE_IN_CONTEXT = "build-ca.crt"
CA_ENV_VARS = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ImageSet:
    """The tag of every component image: what the stack file refers to."""

    tags: dict[str, str]

    def __getitem__(self, component: str) -> str:
        return self.tags[component]


def find_ca_bundle(explicit: Path | None = None) -> Path | None:
    """The CA bundle that downloads inside builds must trust (TLS-intercepting proxies)."""
    if explicit is not None:
        if not explicit.is_file():
            raise UserError(f"The CA file {explicit} does not exist; pass an existing PEM file.")
        return explicit
    for var in CA_ENV_VARS:
        value = os.environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return SYSTEM_CA_BUNDLE if SYSTEM_CA_BUNDLE.is_file() else None


def planned_tags(base_image: str, ca: Path | None) -> ImageSet:
    """Compute every tag without building and without a daemon: what `render` needs."""
    base_key = base.content_key(base_image)
    ca_bytes = ca.read_bytes() if ca else b""
    tags: dict[str, str] = {}
    for component in COMPONENTS:
        args = _build_args(component, base_image, tags)
        tags[component] = directory_tag(component, IMAGES_DIR / component, base_key, ca_bytes, args)
    return ImageSet(tags)


def build_all(
    client: docker.DockerClient,
    base_image: str,
    ca: Path | None,
    progress: Progress,
    only_missing: bool = True,
) -> ImageSet:
    """Build what is missing (or everything); returns the tags the stack must use."""
    base.ensure_base_image(client, base_image, progress)
    images = planned_tags(base_image, ca)
    for component in COMPONENTS:
        args = _build_args(component, base_image, images.tags)
        build_directory(
            client,
            component,
            IMAGES_DIR / component,
            images[component],
            args,
            ca,
            progress,
            only_missing,
        )
    return images


def ensure_directory_image(
    client: docker.DockerClient,
    repository: str,
    directory: Path,
    base_image: str,
    ca: Path | None,
    progress: Progress,
) -> str:
    """One image of its own folder (not a cluster component), built only when its tag is missing."""
    base.ensure_base_image(client, base_image, progress)
    args = {"BASE_IMAGE": base_image}
    ca_bytes = ca.read_bytes() if ca else b""
    tag = directory_tag(repository, directory, base.content_key(base_image), ca_bytes, args)
    build_directory(client, repository, directory, tag, args, ca, progress)
    return tag


def docker_registry_image(
    client: docker.DockerClient, base_image: str, ca: Path | None, progress: Progress
) -> str:
    """Debian's docker-registry: the managed registry's image and the lab's."""
    return ensure_directory_image(
        client, DOCKER_REGISTRY, IMAGES_DIR / DOCKER_REGISTRY, base_image, ca, progress
    )


def _build_args(component: str, base_image: str, tags: dict[str, str]) -> dict[str, str]:
    args = {"BASE_IMAGE": base_image}
    if component == "nginx":
        args["PRETIX_IMAGE"] = tags["pretix"]
    return args


def directory_tag(
    repository: str, directory: Path, base_key: str, ca_bytes: bytes, args: dict[str, str]
) -> str:
    """``pretix-cluster/<repository>:<hash>`` of everything that goes into the image."""
    digest = hashlib.sha256()
    digest.update(base_key.encode())
    digest.update(ca_bytes)
    for key in sorted(args):
        digest.update(f"{key}={args[key]}".encode())
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name != CA_FILE_IN_CONTEXT and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(directory.parent)).encode())
            digest.update(path.read_bytes())
    return f"{IMAGE_PREFIX}/{repository}:{digest.hexdigest()[:12]}"


def _exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def build_directory(
    client: docker.DockerClient,
    repository: str,
    directory: Path,
    tag: str,
    args: dict[str, str],
    ca: Path | None,
    progress: Progress,
    only_missing: bool = True,
) -> None:
    """Build ``directory`` as ``tag`` (and ``:latest``), unless ``tag`` exists already."""
    if only_missing and _exists(client, tag):
        progress(f"{repository}: up to date ({tag})")
        return
    with tempfile.TemporaryDirectory(prefix=f"pretix-cluster-{repository}-") as tmp:
        context = Path(tmp) / repository
        shutil.copytree(
            directory, context, ignore=shutil.ignore_patterns("__pycache__", CA_FILE_IN_CONTEXT)
        )
        # Always present, so Dockerfiles can COPY it unconditionally; empty when none is known.
        (context / CA_FILE_IN_CONTEXT).write_bytes(ca.read_bytes() if ca else b"")
        progress(f"{repository}: building {tag}")
        try:
            for chunk in client.api.build(
                path=str(context),
                tag=tag,
                buildargs=args,
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
            ):
                _report_build_chunk(repository, chunk, progress)
        except docker.errors.APIError as exc:
            raise UserError(f"Building the {repository} image failed: {exc}.") from None
    latest = tag.rsplit(":", 1)[0] + ":latest"
    client.images.get(tag).tag(latest)


def _report_build_chunk(component: str, chunk: dict, progress: Progress) -> None:
    if "error" in chunk:
        raise UserError(
            f"Building the {component} image failed: {chunk['error'].strip()}; "
            "see the output above, fix the cause and run `build` again."
        )
    line = chunk.get("stream", "").strip()
    if line.startswith("Step "):
        progress(f"{component}: {line}")
