"""Debian's archive as this machine's apt is configured to reach it: the base image is built from
the same mirror at run time, so no mirror host is written into the repository."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

APT_DIR = Path("/etc/apt")


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str

    @property
    def is_debian_archive(self) -> bool:
        # Third-party repositories on the host (a vendor's SDK, nodesource) have no place in the image.
        return self.uri.rstrip("/").endswith(("/debian", "/debian-security"))


def _one_line_sources(text: str) -> list[AptSource]:
    found = []
    for line in text.splitlines():
        words = [w for w in line.split("#", 1)[0].split() if not w.startswith("[")]
        if len(words) >= 4 and words[0] == "deb" and "main" in words[3:]:
            found.append(AptSource(words[1], words[2]))
    return found


def _deb822_sources(text: str) -> list[AptSource]:
    found = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and "main" in fields.get("components", "").split():
            found += [
                AptSource(uri, suite)
                for uri in fields.get("uris", "").split()
                for suite in fields.get("suites", "").split()
            ]
    return found


def host_sources(apt_dir: Path = APT_DIR) -> list[AptSource]:
    sources = []
    main_list = apt_dir / "sources.list"
    if main_list.is_file():
        sources += _one_line_sources(main_list.read_text())
    for path in sorted((apt_dir / "sources.list.d").glob("*")):
        if path.suffix == ".list":
            sources += _one_line_sources(path.read_text())
        elif path.suffix == ".sources":
            sources += _deb822_sources(path.read_text())
    return sources


def debian_sources(suite: str, apt_dir: Path = APT_DIR) -> list[AptSource]:
    """The host's Debian archive entries for `suite` and its -updates / -security suites."""
    wanted = {suite, f"{suite}-updates", f"{suite}-security"}
    return [s for s in host_sources(apt_dir) if s.is_debian_archive and s.suite in wanted]


def debian_mirror(suite: str, apt_dir: Path = APT_DIR) -> str:
    for source in debian_sources(suite, apt_dir):
        if source.suite == suite:
            return source.uri
    raise RuntimeError(
        f"no Debian mirror for {suite} in {apt_dir}/sources.list(.d): the base image is built from "
        "the archive this machine's apt uses"
    )
