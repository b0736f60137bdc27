"""Interim `nats_url` fixture until lobe.devtools.pytest_plugin provides it (then delete this)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lobe.devtools.servers.nats import NatsServer


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    with NatsServer(home=tmp_path / "nats") as server:
        yield server.url
