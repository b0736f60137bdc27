"""The gateway's side of the bus, scripted: the mirror of the gateway tests' scripted worker
(services/gateway/tests/support.py). It hands a worker requests on `chat.request` exactly as the
gateway does, reads the frames on the reply subject, sends cancels, and sees every usage event the
worker publishes (on the core subject: each publish, duplicates included) and what JetStream kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.waiting import eventually
from lobe.shared.bus import flush
from lobe.shared.catalog import subject
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    CHAT_CANCEL,
    CHAT_REQUEST,
    AcceptedFrame,
    Caller,
    ChatCancelled,
    ChatRequested,
    DeltaFrame,
    DeltasFrame,
    DoneFrame,
    ErrorFrame,
    HeartbeatFrame,
    ReplyFrame,
    UsageFrame,
    decode_frame,
)
from lobe.shared.events.streams import USAGE
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded

CALLER = Caller(user_id="alice", api_key_id="key-1", plan="free")
ANSWER_WITHIN_S = 10.0  # a loaded machine's bound on one answer; tests wait on conditions, not this


def body(model: str, text: str = "Hi", **fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": text}], "stream": True, **fields}
    )


def openai_at(name: str, upstream: FakeUpstream, **fields: Any) -> Deployment:
    """A deployment speaking OpenAI's wire format to `upstream`, under a path of its own: one fake
    upstream serves several deployments, and `called` tells them apart."""
    base_url = f"{upstream.url}/{name}/v1"
    return Deployment(name=name, provider="openai", base_url=base_url, model="upstream-model", **fields)


def called(upstream: FakeUpstream) -> list[str]:
    """The deployments (of `openai_at`) that `upstream` was called for, in order."""
    return [r.path.split("/")[1] for r in upstream.requests]


def routing(*models: RoutedModel) -> ModelCatalog:
    return ModelCatalog(models=list(models))


@dataclass
class Answer:
    """One request as the gateway sees it: the hand-over reply, then each frame after it."""

    request_id: str
    reply: AcceptedFrame | ErrorFrame
    frames: list[ReplyFrame] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)  # as published: a deltas frame is one

    @property
    def content(self) -> list[ReplyFrame]:
        """The frames without heartbeats (their number depends on timing)."""
        return [f for f in self.frames if not isinstance(f, HeartbeatFrame)]

    @property
    def deltas(self) -> list[DeltaFrame]:
        return [f for f in self.frames if isinstance(f, DeltaFrame)]

    @property
    def text(self) -> str:
        return "".join(f.content or "" for f in self.deltas)

    @property
    def terminal(self) -> DoneFrame | ErrorFrame | None:
        last = self.frames[-1] if self.frames else None
        return last if isinstance(last, DoneFrame | ErrorFrame) else None

    @property
    def usage(self) -> UsageFrame | None:
        return next((f for f in self.frames if isinstance(f, UsageFrame)), None)

    async def ended(self, within_s: float = ANSWER_WITHIN_S) -> DoneFrame | ErrorFrame:
        await eventually(lambda: self.terminal is not None, within_s=within_s)
        assert self.terminal is not None
        return self.terminal


@dataclass
class ScriptedGateway:
    nc: NATS
    published_usage: list[UsageRecorded] = field(default_factory=list)

    async def start(self) -> ScriptedGateway:
        async def on_usage(msg: Msg) -> None:
            self.published_usage.append(UsageRecorded.decode(msg.data))

        await self.nc.subscribe(USAGE_RECORDED, cb=on_usage)
        await flush(self.nc)
        return self

    async def send(self, request: ChatCompletionRequest, **fields: Any) -> Answer:
        """Hand `request` to a worker; the frames then fill the returned answer as they arrive."""
        request_id = fields.pop("request_id", None) or uuid.uuid4().hex
        event = ChatRequested(
            request_id=request_id, caller=CALLER, body=request, reply_to=self.nc.new_inbox(), **fields
        )
        return await self.send_raw(request_id, event.reply_to, event.encode())

    async def send_raw(self, request_id: str, reply_to: str, data: bytes) -> Answer:
        frames: list[ReplyFrame] = []
        messages: list[bytes] = []

        async def on_frame(msg: Msg) -> None:
            messages.append(msg.data)
            frame = decode_frame(msg.data)
            # As the gateway reads them: deltas that came together, one by one.
            frames.extend(frame.deltas if isinstance(frame, DeltasFrame) else [frame])

        await self.nc.subscribe(reply_to, cb=on_frame)  # before the hand-over: no frame is missed
        reply = decode_frame((await self.nc.request(CHAT_REQUEST, data, timeout=ANSWER_WITHIN_S)).data)
        assert isinstance(reply, AcceptedFrame | ErrorFrame), reply
        return Answer(request_id, reply, frames, messages)

    async def ask(self, request: ChatCompletionRequest, **fields: Any) -> Answer:
        """`send`, then wait for the terminal frame."""
        answer = await self.send(request, **fields)
        assert isinstance(answer.reply, AcceptedFrame), answer.reply
        await answer.ended()
        return answer

    async def cancel(self, answer: Answer) -> None:
        assert isinstance(answer.reply, AcceptedFrame)
        event = ChatCancelled(request_id=answer.request_id)
        await self.nc.publish(subject(CHAT_CANCEL, worker_id=answer.reply.worker_id), event.encode())
        await flush(self.nc)

    async def usage_of(self, request_id: str) -> list[UsageRecorded]:
        """Every usage event published for `request_id` (core deliveries, so a second publish
        would show even though JetStream's de-duplication keeps one), once at least one arrived."""
        await eventually(lambda: any(u.request_id == request_id for u in self.published_usage))
        await flush(self.nc)  # anything published before now has reached us too
        return [u for u in self.published_usage if u.request_id == request_id]

    async def kept_usage(self) -> dict[str, UsageRecorded]:
        """The usage events in the USAGE stream, by their `Nats-Msg-Id` (billing's idempotency key)."""
        js = self.nc.jetstream()
        info = await js.stream_info(USAGE.name)
        kept: dict[str, UsageRecorded] = {}
        if not info.state.messages:
            return kept
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await js.get_msg(USAGE.name, seq)
            if msg.subject == USAGE_RECORDED:
                kept[(msg.headers or {})["Nats-Msg-Id"]] = UsageRecorded.decode(msg.data or b"")
        return kept
