"""The base image the service images build on here: Debian bookworm and its Python 3.11, made from
Debian's own packages because no registry can be reached. Built once per machine and reused while
its recipe is unchanged (the recipe's hash is a label on the image)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from lobe.devtools.images.apt_sources import debian_mirror, debian_sources
from lobe.devtools.images.podman import image_labels, podman, podman_env
from lobe.devtools.images.progress import run_logged, say
from lobe.devtools.servers.binaries import debian_binary

BASE_IMAGE = "localhost/lobe-base:bookworm-python3.11"
RECIPE_LABEL = "org.lobe.base.recipe"
SUITE = "bookworm"
VARIANT = "minbase"
# python3.11-venv brings python3.11 and ensurepip's wheels; python-is-python3 the `python` the
# Dockerfiles call, as the official python:3.11-slim has it.
PACKAGES = ("python3.11-venv", "python-is-python3")
UPGRADE = "dist-upgrade"  # security updates from the -security suite, as a fresh image would have
DROP = ("/var/lib/apt/lists/*", "/var/cache/apt/*", "/usr/share/doc/*", "/usr/share/man/*")
ENV = {"LANG": "C.UTF-8", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
CMD = ["python3"]
# Everything that decides what the image holds; change any of it and the next build makes a new one.
RECIPE: dict[str, object] = {
    "suite": SUITE,
    "variant": VARIANT,
    "packages": PACKAGES,
    "upgrade": UPGRADE,
    "drop": DROP,
    "env": ENV,
    "cmd": CMD,
}
# debootstrap's stages, not its line per package.
DEBOOTSTRAP_STAGES = (
    "I: Retrieving InRelease",
    "I: Resolving",
    "I: Unpacking required",
    "I: Configuring required",
    "I: Unpacking the base",
    "I: Configuring the base",
    "I: Base system",
)
# debootstrap's own --include of python3.11-venv fails on dependencies; apt inside the root does not.
INSTALL = """set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -q update
apt-get -q -y {upgrade}
apt-get -q -y install --no-install-recommends {packages}
apt-get clean
rm -rf {drop}
"""


def recipe_hash() -> str:
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:16]


def base_is_current(image: str = BASE_IMAGE) -> bool:
    return image_labels(image).get(RECIPE_LABEL) == recipe_hash()


def _sources_list() -> str:
    return "".join(f"deb {s.uri} {s.suite} main\n" for s in debian_sources(SUITE))


def _bootstrap(rootfs: Path) -> None:
    mirror = debian_mirror(SUITE)
    debootstrap = str(debian_binary("debootstrap", "debootstrap"))
    run_logged(
        "base: debootstrap",
        [debootstrap, f"--variant={VARIANT}", SUITE, str(rootfs), mirror],
        "base-debootstrap.log",
        shown=lambda line: line.startswith(DEBOOTSTRAP_STAGES),
    )
    (rootfs / "etc/apt/sources.list").write_text(_sources_list())
    script = INSTALL.format(upgrade=UPGRADE, packages=" ".join(PACKAGES), drop=" ".join(DROP))
    run_logged(
        "base: apt-get install python3.11",
        ["chroot", str(rootfs), "/bin/sh", "-c", script],
        "base-apt.log",
        shown=lambda line: line.startswith(("Fetched", "Setting up python3.11 ")),
    )


def _import(rootfs: Path, image: str) -> None:
    changes = [f"LABEL {RECIPE_LABEL}={recipe_hash()}", f"CMD {json.dumps(CMD)}"]
    changes += [f"ENV {key}={value}" for key, value in ENV.items()]
    command = podman("import", *[arg for change in changes for arg in ("--change", change)], "-", image)
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        run_logged(
            "base: podman import", command, "base-import.log", lambda _: False, podman_env(), tar.stdout
        )
    if tar.returncode != 0:
        raise RuntimeError(f"tar of {rootfs} exited {tar.returncode}")


def ensure_base(image: str = BASE_IMAGE) -> str:
    """The local base image, built when missing or when its recipe changed; its name."""
    if base_is_current(image):
        say(f"base {image}: up to date (recipe {recipe_hash()})")
        return image
    say(f"base {image}: building from Debian's packages (recipe {recipe_hash()}; a few minutes, once)")
    rootfs = Path(tempfile.mkdtemp(prefix="lobe-base-", dir="/var/tmp")) / "rootfs"
    try:
        _bootstrap(rootfs)
        _import(rootfs, image)
    finally:
        shutil.rmtree(rootfs.parent, ignore_errors=True)
    return image
