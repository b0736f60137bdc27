"""One chat request straight onto the bus, as any service subscribing to the catalog would send it.

Follows the protocol of lobe.shared.events.chat: subscribe to `chat.reply.<request_id>.<offer>`,
send `chat.request` as a NATS request to the worker queue group, take the `accepted` reply (or a
refusal), then read the frames in sequence-number order (heartbeats included) to the terminal
frame. An answer given up on (worker silent, deadline) is cancelled at the worker that took it.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import SecretStr, ValidationError

from lobe.devtools.loadtest.outcome import AnswerCheck, Outcome
from lobe.devtools.loadtest.shape import PROMPT, Shape
from lobe.shared.bus import connect
from lobe.shared.catalog import subject
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    CHAT_CANCEL,
    CHAT_REPLY,
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
    UsageFrame,
    decode_frame,
)
from lobe.shared.settings import NatsSettings

# The bus target does the gateway's part of the protocol, so it connects as the gateway does: its
# NATS user (NATS_USER / NATS_PASSWORD when the server has users, as `lobe dev`'s embedded one
# does) and its inbox prefix, the only place that user may receive replies.
CONNECTION_NAME = "gateway loadtest"
CONNECT_LIMIT_S = 10.0


async def connect_as_gateway(nats_url: str, user: str | None = None, password: str | None = None) -> NATS:
    """A connection with the gateway's rights; user and password default to $NATS_USER / $NATS_PASSWORD."""
    settings = NatsSettings(nats_url=nats_url)
    if user:
        settings = settings.model_copy(update={"nats_user": user, "nats_password": SecretStr(password or "")})
    try:
        # nats.py retries a refused connection forever; a load test should rather say why it cannot.
        async with asyncio.timeout(CONNECT_LIMIT_S):
            return await connect(settings, CONNECTION_NAME)
    except TimeoutError:
        raise ConnectionError(
            f"no NATS connection to {nats_url} in {CONNECT_LIMIT_S:g}s as user {settings.nats_user!r} "
            "(a server with users wants the gateway's: NATS_USER and NATS_PASSWORD)"
        ) from None


class BusTarget:
    def __init__(
        self,
        nc: NATS,
        shape: Shape,
        *,
        model: str,
        caller: Caller,
        coalesced: bool = False,
        accept_timeout_s: float = 1.0,
        silence_s: float = 5.0,
        deadline_s: float = 60.0,
    ) -> None:
        self.nc = nc
        self.shape = shape
        self.caller = caller
        self.coalesced = coalesced
        self.body = ChatCompletionRequest.model_validate(
            {
                "model": model,
                "messages": [{"role": "user", "content": PROMPT}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        self.accept_timeout_s = accept_timeout_s
        self.silence_s = silence_s
        self.deadline_s = deadline_s

    async def __call__(self, due: float) -> Outcome:
        outcome = Outcome(due)
        check = AnswerCheck(self.shape, self.coalesced)
        request_id = "lt-" + uuid.uuid4().hex
        reply_to = subject(CHAT_REPLY, request_id=request_id, offer=1)
        # Subscribed before the request goes out on the same connection: NATS keeps their order.
        sub = await self.nc.subscribe(reply_to)
        worker: str | None = None
        try:
            event = ChatRequested(
                request_id=request_id,
                caller=self.caller,
                body=self.body,
                reply_to=reply_to,
                deadline_ms=int(self.deadline_s * 1000),
            )
            try:
                reply = await self.nc.request(CHAT_REQUEST, event.encode(), timeout=self.accept_timeout_s)
            except NoRespondersError:
                outcome.error = "no worker: no responders on chat.request"
                return outcome
            except NatsTimeout:
                outcome.error = f"not accepted: no worker took it within {self.accept_timeout_s:g}s"
                return outcome
            accepted = decode_frame(reply.data)
            if isinstance(accepted, ErrorFrame):
                outcome.error = f"refused {accepted.code}: {accepted.message}"
                return outcome
            if not isinstance(accepted, AcceptedFrame):
                outcome.error = f"protocol: {accepted.type} frame in reply to chat.request"
                return outcome
            worker = accepted.worker_id
            outcome.error = await self._frames(sub, check, outcome)
            if outcome.error is None:
                worker = None  # the answer ended: nothing to cancel
                outcome.error = check.verdict()
            return outcome
        except ValidationError as exc:
            outcome.error = f"malformed frame: {exc.errors()[0]['loc']}"
            return outcome
        finally:
            outcome.total_s = time.perf_counter() - due
            await sub.unsubscribe()
            if worker is not None:
                cancel = ChatCancelled(request_id=request_id, reason="abandoned")
                await self.nc.publish(subject(CHAT_CANCEL, worker_id=worker), cancel.encode())

    async def _frames(self, sub: Subscription, check: AnswerCheck, outcome: Outcome) -> str | None:
        """Read to the terminal frame; returns an error, or None at `done`."""
        expected_seq = 1
        deadline = outcome.due + self.deadline_s
        while True:
            wait = min(self.silence_s, deadline - time.perf_counter())
            if wait <= 0:
                return f"timeout: no terminal frame within {self.deadline_s:g}s"
            try:
                msg = await sub.next_msg(timeout=wait)
            except NatsTimeout:
                if time.perf_counter() < deadline:
                    return f"silent: no frame on {sub.subject} for {self.silence_s:g}s"
                continue  # the deadline passed: reported above
            frame = decode_frame(msg.data)
            if frame.seq != expected_seq:
                return f"sequence: got frame {frame.seq}, expected {expected_seq}"
            expected_seq += 1
            if isinstance(frame, HeartbeatFrame):
                continue
            if isinstance(frame, DeltasFrame):  # each delta numbered as if it had come alone
                expected_seq += len(frame.deltas) - 1
                for delta in frame.deltas:
                    if delta.content and check.add(delta.content):
                        outcome.ttft_s = time.perf_counter() - outcome.due
            elif isinstance(frame, DeltaFrame):
                if frame.content and check.add(frame.content):
                    outcome.ttft_s = time.perf_counter() - outcome.due
            elif isinstance(frame, UsageFrame):
                check.prompt_tokens = frame.usage.prompt_tokens
                check.completion_tokens = frame.usage.completion_tokens
            elif isinstance(frame, DoneFrame):
                check.finish = frame.finish_reason
                return None
            elif isinstance(frame, ErrorFrame):
                return f"worker error {frame.code}: {frame.message}"
            else:
                return f"protocol: {frame.type} frame inside the answer"
