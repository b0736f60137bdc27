"""Fake providers for a test (lobe.devtools.fake_upstream); imports no service, so the harness
every package loads may use it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lobe.devtools.fake_upstream import FakeUpstream, Reply


@asynccontextmanager
async def upstreams(*defaults: Reply | None, port: int = 0) -> AsyncIterator[list[FakeUpstream]]:
    """One started fake upstream per default reply (None: only what a test pushes), all stopped after;
    `port`: the first one's (0: a free one)."""
    started: list[FakeUpstream] = []
    try:
        for index, default in enumerate(defaults):
            started.append(await FakeUpstream(default=default).start(port if index == 0 else 0))
        yield started
    finally:
        for upstream in started:
            await upstream.stop()
