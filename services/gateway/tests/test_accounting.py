"""A request's accounting has one owner (lobe.gateway.accounting): whatever ends the request,
what it took is given back or settled once, by the object that took it. Through the real app,
billing and the worker played by the test on real NATS."""

from __future__ import annotations

import aiohttp
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.devtools.waiting import eventually
from lobe.shared.bus import flush
from lobe.shared.events.billing import (
    BUDGET_RELEASE,
    BUDGET_RESERVE,
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
)
from lobe.shared.events.usage import USAGE_REPORTED, UsageRecorded
from lobe.shared.tokens import estimate_tokens

from .support import HEADERS, Script, ScriptedWorker, accepted, collected, delta, serving

CHAT = {"model": "mock", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
WORDS = ["several ", "words ", "reached the client"]


async def billing_admits(nc: NATS) -> list[BudgetReserve]:
    holds: list[BudgetReserve] = []

    async def on_reserve(msg: Msg) -> None:
        reserve = BudgetReserve.decode(msg.data)
        holds.append(reserve)
        await msg.respond(BudgetDecision(request_id=reserve.request_id, admitted=True).encode())

    await nc.subscribe(BUDGET_RESERVE, cb=on_reserve)
    await flush(nc)
    return holds


def lost_after_words(rid: str) -> Script:
    """Accepts, sends some words, then falls silent: the gateway declares the worker lost."""
    return accepted(rid), [delta(rid, seq, word) for seq, word in enumerate(WORDS, start=1)]


def silent(rid: str) -> Script:
    return None, []


async def post(base_url: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{base_url}/v1/chat/completions", json=CHAT, headers=HEADERS) as response,
    ):
        return response.status, await response.text()


async def test_a_worker_lost_mid_answer_is_settled_by_the_gateways_usage_not_by_a_release(
    nats_url: str, nc: NATS, worker_nc: NATS
) -> None:
    holds = await billing_admits(nc)
    reported = await collected(nc, USAGE_REPORTED, UsageRecorded)
    releases = await collected(nc, BUDGET_RELEASE, BudgetRelease)
    await ScriptedWorker(worker_nc, scripts=[lost_after_words]).start()
    async with serving(nats_url, billing_enabled=True, worker_silence_s=0.3, dispatch_attempts=1) as base_url:
        status, text = await post(base_url)
        # The usage is published in the request's wind-down, after the answer: the gateway's
        # stop (the end of this block) waits for it.
    await flush(nc)
    assert status == 200  # the stream had started: the failure is its last event
    assert "worker_lost" in text
    assert "[DONE]" not in text
    [hold] = holds
    [event] = reported
    assert (event.request_id, event.status, event.error_code) == (hold.request_id, "error", "worker_lost")
    # What the client received, counted from the frames the answer kept.
    assert event.usage.completion_tokens == sum(estimate_tokens(word) for word in WORDS)
    assert (event.usage.basis, event.usage.source) == ("partial", "estimated")
    assert releases == []  # billing settles the hold with that usage: a release would free it twice


async def test_a_request_no_worker_took_releases_its_hold_once(
    nats_url: str, nc: NATS, worker_nc: NATS
) -> None:
    holds = await billing_admits(nc)
    releases = await collected(nc, BUDGET_RELEASE, BudgetRelease)
    reported = await collected(nc, USAGE_REPORTED, UsageRecorded)
    await ScriptedWorker(worker_nc, scripts=[silent]).start()
    async with serving(nats_url, billing_enabled=True, accept_timeout_s=0.2, dispatch_attempts=1) as base_url:
        status, _ = await post(base_url)
        await eventually(lambda: releases)
        await flush(nc)
    assert status == 503
    [hold] = holds
    assert [release.request_id for release in releases] == [hold.request_id]
    assert reported == []  # no model ran: nothing to record
