"""A scripted chat worker on a real NATS server: it accepts (or refuses) each request and then
publishes exactly the frames a test gives it, well-formed or not, so the gateway's side of the
protocol can be driven into every corner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.devtools.suite import start_gateway
from lobe.shared.bus import flush
from lobe.shared.catalog import subject
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    CHAT_CANCEL,
    CHAT_REQUEST,
    CHAT_WORKER_QUEUE,
    AcceptedFrame,
    Caller,
    ChatCancelled,
    ChatRequested,
    DeltaFrame,
    DoneFrame,
    TokenUsage,
    UsageFrame,
)
from lobe.shared.events.envelope import Event

CALLER = Caller(user_id="alice", api_key_id="key-1", plan="free")
BODY = ChatCompletionRequest.model_validate(
    {"model": "mock", "messages": [{"role": "user", "content": "hi"}]}
)

# What the worker does with one request: (reply to the hand-over or None for silence, frames).
Script = tuple[bytes | None, list[bytes]]


def accepted(request_id: str, worker_id: str = "w1") -> bytes:
    return AcceptedFrame(request_id=request_id, seq=0, worker_id=worker_id).model_dump_json().encode()


def delta(request_id: str, seq: int, text: str) -> bytes:
    return DeltaFrame(request_id=request_id, seq=seq, content=text).model_dump_json().encode()


def finish(request_id: str, seq: int) -> list[bytes]:
    """A usage frame and the done frame, numbered from `seq`."""
    usage = UsageFrame(request_id=request_id, seq=seq, usage=TokenUsage(prompt_tokens=3, completion_tokens=2))
    done = DoneFrame(request_id=request_id, seq=seq + 1, finish_reason="stop", model="mock", provider="mock")
    return [usage.model_dump_json().encode(), done.model_dump_json().encode()]


@dataclass
class ScriptedWorker:
    nc: NATS
    worker_id: str = "w1"
    # One script per request it takes, in order; called with the request id.
    scripts: list[Callable[[str], Script]] = field(default_factory=list)
    requests: list[ChatRequested] = field(default_factory=list)
    cancels: list[ChatCancelled] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self, take_requests: bool = True) -> ScriptedWorker:
        """Subscribe; `take_requests=False` for a worker that only listens for its cancels."""
        if take_requests:
            await self.nc.subscribe(CHAT_REQUEST, queue=CHAT_WORKER_QUEUE, cb=self._on_request)
        await self.nc.subscribe(subject(CHAT_CANCEL, worker_id=self.worker_id), cb=self._on_cancel)
        await flush(self.nc)
        return self

    async def _on_request(self, msg: Msg) -> None:
        event = ChatRequested.decode(msg.data)
        self.requests.append(event)
        reply, frames = self.scripts.pop(0)(event.request_id)
        if reply is None:
            return  # silence: never accepts
        await msg.respond(reply)
        for frame in frames:
            await self.nc.publish(event.reply_to, frame)

    async def _on_cancel(self, msg: Msg) -> None:
        self.cancels.append(ChatCancelled.decode(msg.data))
        self.cancelled.set()


KEY = "sk-unit"
HEADERS = {"Authorization": f"Bearer {KEY}"}


@contextlib.asynccontextmanager
async def serving(nats_url: str, **overrides: Any) -> AsyncIterator[str]:
    """The real gateway app on a free port (its base URL); billing, rate limits and the cache are
    off unless the test turns them on. Bootstrap key KEY is alice's, on the free plan."""
    values: dict[str, Any] = {
        "gateway_api_keys": f"{KEY}:alice:free",
        "billing_enabled": False,
        "rate_limits_enabled": False,
        "cache_enabled": False,
        "worker_silence_s": 0.5,
    }
    gateway = await start_gateway(nats_url, **{**values, **overrides})
    try:
        yield gateway.url
    finally:
        await gateway.stop()


def answers(n: int, text: str = "Hi") -> list[Callable[[str], Script]]:
    """Scripts for `n` requests, each answered in full: one delta, usage (3 + 2 tokens), done."""
    return [lambda rid: (accepted(rid), [delta(rid, 1, text), *finish(rid, 2)])] * n


E = TypeVar("E", bound=Event)


async def collected(nc: NATS, subject: str, model: type[E]) -> list[E]:
    """A list that fills with every `subject` message from now on, decoded as `model`."""
    seen: list[E] = []

    async def on_message(msg: Msg) -> None:
        seen.append(model.decode(msg.data))

    await nc.subscribe(subject, cb=on_message)
    await flush(nc)
    return seen
