"""podman as this kind of machine needs it: the flags live here and nowhere else."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lobe.devtools.servers.binaries import debian_binary

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
# crun refuses this kernel's cgroup layout and there is no systemd to manage cgroups.
GLOBAL_FLAGS = ("--runtime", "runc", "--cgroup-manager=cgroupfs")
# Raising limits is not permitted: containers get limits at or below the host's.
ULIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(*args: str) -> list[str]:
    """A podman command line; fails naming the Debian package when podman or runc is missing."""
    debian_binary("runc", "runc")
    return [str(debian_binary("podman", "podman")), *GLOBAL_FLAGS, *args]


def run_podman(*args: str, timeout: float = 120) -> str:
    result = subprocess.run(podman(*args), env=podman_env(), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def image_inspect(image: str) -> dict[str, Any] | None:
    """The image's `podman image inspect` record, or None when no such image is stored."""
    result = subprocess.run(
        podman("image", "inspect", image), env=podman_env(), capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        return None
    records: Sequence[dict[str, Any]] = json.loads(result.stdout)
    return records[0]


def image_labels(image: str) -> dict[str, str]:
    record = image_inspect(image)
    return (record or {}).get("Labels") or {}
