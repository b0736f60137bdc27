"""pip inside an image build configured as the host's pip is: its index, extra indexes, CA bundle
and constraints come from the host's pip.conf files and PIP_* variables at build time, so no
index host is written into the repository or baked into an image."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# `pip config list` prints `global.cert='…'` for files and `:env:.cert='…'` for PIP_* variables.
ENTRY = re.compile(r"^(?P<section>[^.\s]*|:env:)\.(?P<key>[\w-]+)='(?P<value>.*)'$")


def host_pip_config(python: str = sys.executable) -> dict[str, dict[str, str]]:
    """The host pip's settings by section; variables win over files, as they do for pip itself."""
    listing = subprocess.run(
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    sections: dict[str, dict[str, str]] = {}
    from_env: dict[str, str] = {}
    for line in listing.splitlines():
        if match := ENTRY.match(line.strip()):
            if match["section"] == ":env:":
                from_env[match["key"]] = match["value"]
            else:
                sections.setdefault(match["section"], {})[match["key"]] = match["value"]
    sections.setdefault("global", {}).update(from_env)
    return sections


def render(config: dict[str, dict[str, str]]) -> str:
    return "".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in keys.items())
        for section, keys in config.items()
    )


def local_paths(config: dict[str, dict[str, str]]) -> list[Path]:
    """Host files and folders the settings name (a CA bundle, a local index, constraints): the build
    sees them at the same paths, read-only. Paths that do not exist are left out, as pip skips them."""
    found: set[Path] = set()
    for keys in config.values():
        for value in keys.values():
            for word in value.split():
                path = Path(word.removeprefix("file://").rstrip("/"))
                if word.startswith("file://") and path.name == "simple":
                    # A local index's pages link to its files beside it (../files/…).
                    path = path.parent
                if path.is_absolute() and path.exists():
                    found.add(path)
    return sorted(found)


def build_mounts(conf_file: Path, python: str = sys.executable) -> list[str]:
    """`podman build -v` arguments that give RUN steps the host's pip configuration."""
    config = host_pip_config(python)
    conf_file.parent.mkdir(parents=True, exist_ok=True)
    conf_file.write_text(render(config))
    mounts = [f"{conf_file.resolve()}:/etc/pip.conf:ro"]
    return [arg for path in local_paths(config) for arg in ("-v", f"{path}:{path}:ro")] + [
        arg for mount in mounts for arg in ("-v", mount)
    ]
