"""Drive a target at one load level: closed loop at a concurrency, or open loop at an arrival rate.

A level runs for a number of requests or a duration. The closed loop keeps `concurrency`
requests in flight, each lane sending its next as soon as the previous ends. The open loop sends
request i at t0 + i/rate whether or not earlier ones have finished, and every latency counts
from that due time, so a suite (or a client) that falls behind shows it in the percentiles
instead of slowing the arrivals down (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from tqdm import tqdm

from lobe.devtools.loadtest.outcome import Outcome

Target = Callable[[float], Awaitable[Outcome]]
Mode = Literal["closed", "open"]
# Beyond this many answers in flight an open loop reports arrivals as errors instead of sending
# them: the client's own memory and sockets are then the bottleneck, not the suite.
MAX_IN_FLIGHT = 20_000


@dataclass(frozen=True)
class Level:
    mode: Mode
    value: float  # concurrency (closed) or requests per second (open)
    requests: int | None = None
    duration_s: float | None = None

    def __post_init__(self) -> None:
        if (self.requests is None) == (self.duration_s is None):
            raise ValueError("a level runs for a number of requests or for a duration, not both")
        if self.value <= 0:
            raise ValueError("concurrency and rate must be positive")

    @property
    def label(self) -> str:
        return f"c={self.value:g}" if self.mode == "closed" else f"{self.value:g} req/s"


@dataclass
class LevelRun:
    level: Level
    outcomes: list[Outcome]
    began: float  # perf_counter
    ended: float

    @property
    def wall_s(self) -> float:
        return self.ended - self.began


async def run_level(target: Target, level: Level, *, progress: bool = True, desc: str = "") -> LevelRun:
    total = level.requests
    if total is None and level.mode == "open" and level.duration_s is not None:
        total = int(level.value * level.duration_s)  # arrivals are scheduled: their count is known
    bar = tqdm(total=total, desc=desc or level.label, unit="req", disable=not progress, leave=True)
    outcomes: list[Outcome] = []
    errors = 0

    def done(outcome: Outcome) -> None:
        nonlocal errors
        outcomes.append(outcome)
        errors += not outcome.ok
        bar.update()
        if not outcome.ok:
            bar.set_postfix(errors=errors, refresh=False)

    began = time.perf_counter()
    try:
        if level.mode == "closed":
            await _closed(target, level, began, done)
        else:
            await _open(target, level, began, done)
    finally:
        bar.close()
    return LevelRun(level, outcomes, began, time.perf_counter())


async def _closed(target: Target, level: Level, began: float, done: Callable[[Outcome], None]) -> None:
    started = 0
    stop_at = began + level.duration_s if level.duration_s is not None else None

    async def lane() -> None:
        nonlocal started
        while True:
            if level.requests is not None and started >= level.requests:
                return
            now = time.perf_counter()
            if stop_at is not None and now >= stop_at:
                return
            started += 1
            done(await target(now))

    await asyncio.gather(*(lane() for _ in range(int(level.value))))


async def _open(target: Target, level: Level, began: float, done: Callable[[Outcome], None]) -> None:
    interval = 1.0 / level.value
    in_flight: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        done(await target(due))

    index = 0
    while True:
        due = began + index * interval
        if level.requests is not None and index >= level.requests:
            break
        if level.duration_s is not None and due >= began + level.duration_s:
            break
        index += 1
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= MAX_IN_FLIGHT:
            done(Outcome(due, total_s=0.0, error=f"client: over {MAX_IN_FLIGHT} answers in flight"))
            continue
        task = asyncio.create_task(one(due))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.gather(*in_flight)
