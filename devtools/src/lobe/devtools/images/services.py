"""The four service images, built with podman on the local base from each service's Dockerfile."""

from __future__ import annotations

from pathlib import Path

from lobe.devtools.images.pip_config import build_mounts
from lobe.devtools.images.podman import ULIMITS, podman, podman_env
from lobe.devtools.images.progress import LOG_DIR, run_logged

SERVICES = ("gateway", "chat-worker", "billing", "metrics")
ROOT = Path(__file__).resolve().parents[5]


def image_name(service: str) -> str:
    return f"localhost/lobe-{service}:local"


def build_service(service: str, base: str, root: Path = ROOT) -> str:
    """Build `service`'s image on `base` (layers cached between builds); its name."""
    dockerfile = root / "services" / service / "Dockerfile"
    command = podman(
        "build",
        "--format", "docker",  # an OCI image would drop the HEALTHCHECK
        "--network", "host",  # pip reaches the index as the host does
        *ULIMITS,
        "--layers",
        "--build-arg", f"BASE_IMAGE={base}",
        "-f", str(dockerfile),
        "--ignorefile", str(dockerfile.with_name("Dockerfile.dockerignore")),
        *build_mounts(LOG_DIR / "pip.conf"),
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
