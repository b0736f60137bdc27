"""The Debian tools the suite runs (tools/system-deps.txt) are installed: `make install` puts them
there, and a machine where it could not fails here, naming each one, rather than passing quietly."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lobe.devtools.servers.binaries import debian_binary

LIST = Path(__file__).resolve().parents[2] / "tools" / "system-deps.txt"
ROWS = [line.split()[:2] for line in LIST.read_text().splitlines() if line.strip() and line[0] != "#"]


def test_the_list_names_promtool_prometheus_and_nginx() -> None:
    assert {binary for binary, _ in ROWS} >= {"promtool", "prometheus", "nginx"}


@pytest.mark.parametrize(("binary", "package"), ROWS)
def test_each_listed_binary_is_installed_and_runs(binary: str, package: str) -> None:
    version = "-v" if binary == "nginx" else "--version"
    result = subprocess.run(
        [debian_binary(binary, package), version], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # `debootstrap --version` prints its name and number, without the word.
    assert {"version", binary} & set(re.split(r"[\s:]+", (result.stdout + result.stderr).lower()))
