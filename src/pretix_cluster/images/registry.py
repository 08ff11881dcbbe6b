"""The same images on every node: the content-hash tags pushed to a registry.

Images are built by this machine's Docker daemon. A swarm of one node runs them
from there; on several nodes every node pulls them from ``[images] registry``
under the same repository path and tag. The push may go in by another address
than the one nodes pull from (the lab's registry: plain HTTP on the host's
loopback, nodes on its bridge address); by default both are the same.
"""

from __future__ import annotations

from collections.abc import Callable

import docker
import docker.errors
import httpx

from pretix_cluster.errors import UserError
from pretix_cluster.images.build import ImageSet

Progress = Callable[[str], None]


def qualified(image: str, registry_address: str) -> str:
    """The image's name in the registry: same repository path and tag, the registry's host.

    A leading registry host ("docker.io/...", "host:5000/...") is replaced, not kept.
    """
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        image = rest
    return f"{registry_address}/{image}"


def as_pulled(images: ImageSet, registry: str) -> ImageSet:
    """The names nodes pull the images by (what the stack names)."""
    return ImageSet({c: qualified(image, registry) for c, image in images.tags.items()})


def split_tag(name: str) -> tuple[str, str]:
    """'host:5000/a/b:tag' -> ('host:5000/a/b', 'tag'); a name without tag means latest."""
    repository, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "latest"
    return repository, tag


def check_answers(address: str, timeout: float = 5) -> None:
    """A registry that does not answer its API is one sentence, before anything is built."""
    errors = []
    for scheme in ("https", "http"):
        try:
            # 200, or 401 for a registry that wants a login (docker login covers the push).
            if httpx.get(f"{scheme}://{address}/v2/", timeout=timeout).status_code in (200, 401):
                return
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
    raise UserError(
        f"The registry {address} does not answer ({', '.join(errors) or 'no registry API'}); "
        "start it or fix [images] registry in cluster.toml."
    )


def push_image(
    builder: docker.DockerClient,
    image: str,
    registry: str,
    via: str,
    progress: Progress,
    auth_config: dict[str, str] | None = None,
) -> str:
    """Push one local image through ``via``; returns its name at ``registry`` (what nodes pull).

    When ``via`` is another address than ``registry``, the name used for the push is
    removed again afterwards: it is only the way in. ``auth_config`` is the registry's
    login (the managed registry's), sent in the API's header, never on a command line.
    """
    through = qualified(image, via)
    repository, tag = split_tag(through)
    try:
        builder.images.get(image).tag(repository, tag)
    except docker.errors.ImageNotFound:
        raise UserError(
            f"The image {image} does not exist on this machine; build it first."
        ) from None
    progress(f"registry: pushing {image} to {via}")
    try:
        for chunk in builder.images.push(
            repository, tag, stream=True, decode=True, auth_config=auth_config
        ):
            if "error" in chunk:
                raise UserError(
                    f"Pushing {image} to {via} failed ({chunk['error'].strip()}); "
                    "check the registry, then run the command again."
                )
    finally:
        if via != registry:
            builder.images.remove(through, noprune=True)
    return qualified(image, registry)


def push(
    builder: docker.DockerClient,
    images: ImageSet,
    registry: str,
    progress: Progress,
    push_via: str | None = None,
) -> ImageSet:
    """Push every image; returns the names the nodes pull (``registry/...:<same tag>``).

    The caller has checked that the registry answers (`up` does, before building).
    """
    via = push_via or registry
    for image in images.tags.values():
        push_image(builder, image, registry, via, progress)
    return as_pulled(images, registry)
