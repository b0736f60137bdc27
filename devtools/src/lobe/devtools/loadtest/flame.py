"""Where a process's time went, read from a py-spy flame graph (SVG): the share of its samples
whose stack passes through frames of a kind (socket writes, JSON and pydantic, ...)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

# Each rectangle is one frame of the merged call tree; fg:x/fg:w are its samples on the x axis.
_RECT = re.compile(
    r'<title>(?P<title>.*?) \(\d+ samples?, [\d.]+%\)</title><rect [^>]*fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)

# What the first profile named, so that each new profile reads against it.
KINDS: Mapping[str, str] = {
    # asyncio's transport write; under uvloop (every service) the write is C code that py-spy
    # sees as the Python frame calling it: asyncio's StreamWriter (nats.py), aiohttp's writer.
    "socket writes (transport write)": (
        r"^_SelectorSocketTransport\.write"
        r"|^StreamWriter\.(write|writelines) \(asyncio/streams\.py"
        r"|^StreamWriter\._write(lines)? \(aiohttp/http_writer\.py"
    ),
    "`asyncio.wait_for`": r"^wait_for \(asyncio/tasks\.py",
    "JSON encode/decode, pydantic models": r"json/(encoder|decoder|__init__)\.py|pydantic/|^decode_frame |\.encode \(shared/",
    "`uuid4`": r"^uuid4 \(uuid\.py",
    "FastStream middlewares and dependency injection": r"\((faststream|fast_depends)/",
    # Round trips that production requests pay on the gateway (rate limits in Redis, budgets).
    "Redis client (rate limits, response cache)": r"\(redis/",
    "billing round trips (budget reserve, price quote)": r"\(gateway/budget\.py",
    # The event loop's side of a call FastStream runs in a thread (the thread's own frames are
    # mostly it waiting in Queue.get for work, which py-spy does not always see as idle).
    "sync calls handed to a thread (`run_in_threadpool`)": r"^run_in_threadpool ",
}


def frames(svg: Path) -> list[tuple[str, int, int]]:
    """(title, first sample, samples) of every rectangle."""
    return [(m["title"], int(m["x"]), int(m["w"])) for m in _RECT.finditer(svg.read_text())]


def _covered(spans: Iterable[tuple[int, int]]) -> int:
    """Samples covered by the union of [x, x + w) spans: a stack is counted once, however many
    of its frames match."""
    covered, end = 0, -1
    for start, width in sorted(spans):
        stop = start + width
        if stop > end:
            covered += stop - max(start, end)
            end = stop
    return covered


def shares(svg: Path, kinds: Mapping[str, str] = KINDS) -> dict[str, float]:
    """Percent of the samples whose stack contains a frame matching each kind's pattern."""
    found = frames(svg)
    total = max((x + w for _, x, w in found), default=0)
    result = {}
    for kind, pattern in kinds.items():
        regex = re.compile(pattern)
        result[kind] = (
            100 * _covered((x, w) for title, x, w in found if regex.search(title)) / total if total else 0.0
        )
    return result
