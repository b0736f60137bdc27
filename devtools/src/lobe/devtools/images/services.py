"""The four service images, built with podman on the local base from each service's Dockerfile."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lobe.devtools.images.pip_config import build_mounts
from lobe.devtools.images.podman import ULIMITS, image_inspect, image_labels, podman, podman_env
from lobe.devtools.images.progress import LOG_DIR, run_logged, say

SERVICES = ("gateway", "chat-worker", "billing", "metrics")
ROOT = Path(__file__).resolve().parents[5]


INPUTS_LABEL = "org.lobe.inputs"
# Left out of the inputs' hash: what every Dockerfile.dockerignore also leaves out of the context
# (and no more), so a skipped build can never leave a stale image; at worst one builds for nothing.
IGNORED_DIRS = {"__pycache__", "tests", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
IGNORED_SUFFIXES = {".egg-info", ".pyc", ".pyo", ".pyd"}


def image_name(service: str) -> str:
    return f"localhost/lobe-{service}:local"


def inputs_hash(service: str, base: str, pip_conf: Path, root: Path = ROOT) -> str:
    """The hash of all a build of `service` reads: base image, pip settings, Dockerfile, context."""
    digest = hashlib.sha256(str((image_inspect(base) or {}).get("Id")).encode() + pip_conf.read_bytes())
    folders = [root / "shared", root / "services" / service]
    files = [root / "constraints.txt", *(path for folder in folders for path in folder.rglob("*"))]
    for path in sorted(files):
        relative = path.relative_to(root)
        if path.is_dir() or IGNORED_DIRS & set(relative.parts):
            continue
        if any(part.endswith(tuple(IGNORED_SUFFIXES)) for part in relative.parts):
            continue
        digest.update(f"{relative}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_service(service: str, base: str, root: Path = ROOT) -> str:
    """Build `service`'s image on `base` (layers cached between builds); its name."""
    dockerfile = root / "services" / service / "Dockerfile"
    mounts = build_mounts(LOG_DIR / "pip.conf")
    inputs = inputs_hash(service, base, LOG_DIR / "pip.conf", root)
    if image_labels(image_name(service)).get(INPUTS_LABEL) == inputs:
        say(f"{service}: up to date (inputs {inputs})")
        return image_name(service)
    command = podman(
        "build",
        "--format", "docker",  # an OCI image would drop the HEALTHCHECK
        "--network", "host",  # pip reaches the index as the host does
        *ULIMITS,
        "--layers",
        "--build-arg", f"BASE_IMAGE={base}",
        "-f", str(dockerfile),
        "--ignorefile", str(dockerfile.with_name("Dockerfile.dockerignore")),
        *mounts,
        "--label", f"{INPUTS_LABEL}={inputs}",
        "-t", image_name(service),
        str(root),
    )  # fmt: skip
    run_logged(
        service,
        command,
        f"{service}-build.log",
        shown=lambda line: "STEP " in line or line.startswith("--> Using cache"),
        env=podman_env(),
    )
    return image_name(service)
