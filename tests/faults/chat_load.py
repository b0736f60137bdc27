"""Chat traffic for fault tests: clients asking through a gateway in a loop while something breaks,
each attempt recorded with when it started, when it ended and how; and what the ledger must say
about them afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from .conftest import Outcome, chat

# The mock, paced: each answer streams for about a second, so a fault always lands mid-answer
# (named `mock`, which the price table prices).
MODELS_YAML = """
models:
  - name: mock
    deployments: [{name: mock-paced, provider: mock, chunk_delay_s: 0.08}]
"""
MODEL = "mock"
STAGGER_S = 0.17
# Longer than any answer can take while the gateway works: an attempt still open then has hung.
HANG_S = 45.0
# Error codes meaning a worker took the request: its usage must be in the ledger all the same.
WORKER_RAN = frozenset({"worker_lost", "stream_gap", "timeout", "worker_shutdown", "stream_truncated"})


def write_models(directory: Path) -> str:
    path = directory / "models.yaml"
    path.write_text(MODELS_YAML)
    return str(path)


@dataclass
class Attempt:
    started: float
    ended: float
    stream: bool
    outcome: Outcome | None  # None: no answer within HANG_S

    @property
    def succeeded(self) -> bool:
        return self.outcome is not None and self.outcome.status == 200 and self.outcome.code is None


@dataclass
class ChatLoad:
    """`clients` concurrent clients, each asking again as soon as it has its answer."""

    base_url: str
    api_key: str
    clients: int = 6
    attempts: list[Attempt] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client(i)) for i in range(self.clients)]

    async def stop(self) -> list[Attempt]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return self.attempts

    async def _client(self, index: int) -> None:
        # Staggered, so that whenever the fault lands, answers are at every stage: handed over,
        # mid-stream, finishing.
        await asyncio.sleep(index * STAGGER_S)
        timeout = aiohttp.ClientTimeout(total=HANG_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            n = 0
            while not self._stop.is_set():
                n += 1
                stream = (index + n) % 2 == 0
                payload = {
                    "model": MODEL,
                    "stream": stream,
                    "stream_options": {"include_usage": True} if stream else None,
                    "messages": [{"role": "user", "content": f"client {index} asks question {n} of many"}],
                }
                started = time.monotonic()
                try:
                    outcome: Outcome | None = await chat(http, self.base_url, self.api_key, payload)
                except TimeoutError:
                    outcome = None
                except aiohttp.ClientError as exc:  # the gateway itself never goes away in these tests
                    outcome = Outcome(0, "connection_error", repr(exc))
                self.attempts.append(Attempt(started, time.monotonic(), stream, outcome))

    def successes(self) -> int:
        return sum(a.succeeded for a in self.attempts)

    async def wait_for_successes(self, count: int, within_s: float = 30.0) -> None:
        deadline = time.monotonic() + within_s
        while self.successes() < count:
            assert time.monotonic() < deadline, f"only {self.successes()} answers in {within_s:g} s"
            await asyncio.sleep(0.05)

    async def first_success_started_after(self, moment: float, within_s: float) -> float:
        """Seconds from `moment` until an attempt begun after it was answered in full."""
        deadline = time.monotonic() + within_s
        while True:
            done = [a.ended for a in self.attempts if a.started >= moment and a.succeeded]
            if done:
                return min(done) - moment
            assert time.monotonic() < deadline, (
                f"no request begun after the fault succeeded in {within_s:g} s"
            )
            await asyncio.sleep(0.02)


def assert_every_attempt_ended_explicitly(attempts: Sequence[Attempt]) -> None:
    """Guarantee 1: a complete answer or an explicit error, never a hang or a truncated answer."""
    hung = [a for a in attempts if a.outcome is None]
    assert not hung, f"{len(hung)} requests got no answer within {HANG_S:g} s"
    for attempt in attempts:
        outcome = attempt.outcome
        assert outcome is not None
        assert outcome.code != "incomplete", f"an answer ended without completing or an error: {outcome}"
        if outcome.status != 200 or outcome.code is not None:
            assert outcome.code, f"an error without an OpenAI error code: {outcome}"


async def assert_ledger_matches(dsn: str, attempts: Sequence[Attempt]) -> dict[str, int]:
    """Usage neither lost nor doubled: one ledger row per request that a worker served (with the
    tokens the client was told), none for a request refused before dispatch, and no row for
    anything the clients did not ask. Returns counts by outcome."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = {
            r["request_id"]: (r["status"], r["tokens"])
            for r in await conn.fetch(
                "SELECT request_id, status, prompt_tokens + completion_tokens AS tokens FROM usage_ledger"
            )
        }
    finally:
        await conn.close()
    ours = {a.outcome.request_id for a in attempts if a.outcome and a.outcome.request_id}
    assert set(rows) <= ours, f"ledger rows for requests nobody sent: {sorted(set(rows) - ours)[:5]}"
    counts: dict[str, int] = {}
    for attempt in attempts:
        outcome = attempt.outcome
        assert outcome is not None
        key = "ok" if attempt.succeeded else (outcome.code or str(outcome.status))
        counts[key] = counts.get(key, 0) + 1
        rid = outcome.request_id
        if attempt.succeeded:
            assert rid in rows, f"a completed answer was not billed: {rid}"
            status, tokens = rows[rid]
            assert status == "ok", (rid, status)
            assert tokens == outcome.total_tokens, (
                f"{rid}: billed {tokens} tokens, client told {outcome.total_tokens}"
            )
        elif outcome.code in WORKER_RAN:
            assert rid in rows, f"a worker served {rid} ({outcome.code}) but its usage is not in the ledger"
        elif outcome.code == "billing_unavailable":
            assert rid not in rows, f"{rid} was refused before dispatch yet billed"
    return counts


def served(attempts: Sequence[Attempt]) -> set[str]:
    """The requests a worker ran: each must end as one ledger row (assert_ledger_matches)."""
    return {
        a.outcome.request_id
        for a in attempts
        if a.outcome and a.outcome.request_id and (a.succeeded or a.outcome.code in WORKER_RAN)
    }


async def ledger_settled(
    dsn: str, backlog: int, quiet_s: float = 2.0, expected: Collection[str] = ()
) -> bool:
    """True once billing has acked everything, every `expected` request has its row, and the
    ledger stopped growing for `quiet_s`. A worker's usage publish may still be retrying after a
    reconnect (backoff up to seconds), so a quiet ledger alone is no proof; the caller's bounded
    wait then fails on a row that never comes."""
    if backlog:
        return False
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        if expected:
            present = await conn.fetchval(
                "SELECT count(*) FROM usage_ledger WHERE request_id = ANY($1::text[])", list(expected)
            )
            if present < len(expected):
                return False
        before = await conn.fetchval("SELECT count(*) FROM usage_ledger")
        await asyncio.sleep(quiet_s)
        return bool(before == await conn.fetchval("SELECT count(*) FROM usage_ledger"))
    finally:
        await conn.close()
