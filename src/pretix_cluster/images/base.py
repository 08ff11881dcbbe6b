"""The Debian base image: pulled where a registry answers, else made offline.

Machines without a reachable registry still have Debian's package mirror, so
`debootstrap --variant=minbase` plus `docker import` gives the same bookworm
userland that `debian:bookworm-slim` would (about 30 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from pretix_cluster.errors import UserError

SUITE = "bookworm"
VARIANT = "minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"

Progress = Callable[[str], None]


def content_key(name: str) -> str:
    """What the base image is, as far as the images built on it are concerned.

    An image's tag must change when its base really changes, and must be known
    without a Docker daemon (`render` runs anywhere). The base is made once and
    never replaced by `build`: pulled as `name`, or debootstrapped as Debian
    SUITE/VARIANT under that name. Either way it is that Debian release, and
    every package on top is installed from the release's archive at a pinned
    version. So what really changes the base is its name (another image or
    release) or the suite and variant debootstrap makes; those are the key.
    Not in it: the mirror (the same archive from anywhere, switching must not
    rebuild), and the local image id or a pulled digest, which only a daemon
    or a registry can tell and which differ between two machines that build
    the same images. A base re-pulled with a newer point release therefore
    keeps the tags: `build --force` rebuilds on it.
    """
    return f"{name} debootstrap --variant={VARIANT} {SUITE}"


def image_id(client: docker.DockerClient, name: str) -> str:
    try:
        return client.images.get(name).id
    except docker.errors.ImageNotFound:
        return "absent"


def ensure_base_image(client: docker.DockerClient, name: str, progress: Progress) -> None:
    if image_id(client, name) != "absent":
        return
    progress(f"base: pulling {name}")
    if _try_pull(client, name):
        return
    progress(f"base: no registry answers; building {name} with debootstrap")
    _debootstrap_import(name)


def _try_pull(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.pull(name)
        return True
    except docker.errors.APIError:
        return False


def _debootstrap_import(name: str) -> None:
    if shutil.which("debootstrap") is None:
        raise UserError(
            f"{name} cannot be pulled and debootstrap is missing; "
            "install it (apt-get install debootstrap) or make the image available."
        )
    if os.geteuid() != 0:
        raise UserError(f"{name} must be built with debootstrap, which needs root; run as root.")
    mirror = os.environ.get("PRETIX_CLUSTER_DEBIAN_MIRROR", DEFAULT_MIRROR)
    with tempfile.TemporaryDirectory(prefix="pretix-cluster-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        _run(["debootstrap", f"--variant={VARIANT}", SUITE, str(root), mirror], "debootstrap")
        _write_apt_sources(root, mirror)
        _strip_caches(root)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        _run(
            ["docker", "import", "-c", 'CMD ["bash"]', "-", name], "docker import", stdin=tar.stdout
        )
        tar.wait()


def _write_apt_sources(root: Path, mirror: str) -> None:
    # debootstrap only knows the release itself; images also need its fixes.
    (root / "etc/apt/sources.list").write_text(
        f"deb {mirror} {SUITE} main\n"
        f"deb {mirror} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
    )


def _strip_caches(root: Path) -> None:
    for directory in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / directory).glob("*"):
            if entry.is_file():
                entry.unlink()


def _run(command: list[str], what: str, stdin=None) -> None:
    result = subprocess.run(command, stdin=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise UserError(f"{what} failed ({' / '.join(tail)}); check the Debian mirror and retry.")
