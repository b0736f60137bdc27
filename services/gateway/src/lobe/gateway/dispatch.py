"""The gateway's side of the chat protocol on NATS (see lobe.shared.events.chat).

Yields the frames of one answer, hiding worker choice, heartbeats and re-dispatch. Every failure
surfaces as an `ApiError`; `WorkerLost` says the worker vanished after the answer had started.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import ValidationError

from lobe.gateway.settings import GatewaySettings
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    CHAT_REQUEST,
    AcceptedFrame,
    Caller,
    ChatRequested,
    DeltaFrame,
    DoneFrame,
    ErrorFrame,
    HeartbeatFrame,
    ResetFrame,
    UsageFrame,
    decode_frame,
    reply_subject,
)
from lobe.shared.openai_errors import ApiError
from lobe.shared.telemetry import inject_headers

log = logging.getLogger(__name__)

AnswerFrame = DeltaFrame | ResetFrame | UsageFrame | DoneFrame
SATURATED_BACKOFF_S = 0.05
SATURATED_BACKOFF_MAX_S = 0.2


class WorkerLost(ApiError):
    """The worker went silent (died) after output had started: the answer is incomplete."""


class WorkerSilent(Exception):
    """No frame for WORKER_SILENCE_S: the worker is presumed dead."""


def no_worker(message: str) -> ApiError:
    return ApiError(503, message, "no_worker_available", headers={"Retry-After": "1"})


class ChatDispatcher:
    def __init__(self, nc: NATS, settings: GatewaySettings) -> None:
        self.nc = nc
        self.settings = settings

    async def stream(
        self, request_id: str, caller: Caller, body: ChatCompletionRequest
    ) -> AsyncGenerator[AnswerFrame, None]:
        settings = self.settings
        deadline = time.monotonic() + settings.request_timeout_s
        saturated_until = time.monotonic() + settings.saturation_wait_s
        attempt = 1  # dispatches that a worker accepted or let time out; refusals for load do not count
        offer = 0
        while True:
            offer += 1
            # A reply subject per offer: frames from a worker presumed dead can never mix in.
            subject = f"{reply_subject(request_id)}.{offer}"
            sub = await self.nc.subscribe(subject)
            try:
                accepted = await self._hand_over(request_id, caller, body, subject, attempt, deadline)
                if isinstance(accepted, ErrorFrame):
                    if accepted.code != "worker_saturated":
                        raise ApiError(accepted.status, accepted.message, accepted.code)
                    remaining = saturated_until - time.monotonic()
                    if remaining <= 0:
                        raise no_worker("All chat workers are busy; retry shortly.")
                    # Growing back-off, capped so a freed slot is seen soon, and never past the bound.
                    await asyncio.sleep(min(SATURATED_BACKOFF_S * offer, SATURATED_BACKOFF_MAX_S, remaining))
                    continue
                if accepted is None:  # nobody took it in time: a worker may be dying
                    if attempt >= settings.dispatch_attempts:
                        raise no_worker("No chat worker accepted the request in time.")
                    attempt += 1
                    continue
                started = False
                try:
                    async for frame in self._frames(sub, deadline):
                        started = started or isinstance(frame, DeltaFrame)
                        yield frame
                        if isinstance(frame, DoneFrame):
                            return
                except WorkerSilent:
                    if started or attempt >= settings.dispatch_attempts:
                        raise WorkerLost(
                            502,
                            "The chat worker stopped responding; the answer is incomplete.",
                            "worker_lost",
                        ) from None
                    log.warning(
                        "worker silent before first token; re-dispatching", extra={"request_id": request_id}
                    )
                attempt += 1
            finally:
                await sub.unsubscribe()

    async def _hand_over(
        self,
        request_id: str,
        caller: Caller,
        body: ChatCompletionRequest,
        subject: str,
        attempt: int,
        deadline: float,
    ) -> AcceptedFrame | ErrorFrame | None:
        event = ChatRequested(
            request_id=request_id,
            caller=caller,
            body=body,
            reply_to=subject,
            attempt=attempt,
            deadline_ms=max(1, int((deadline - time.monotonic()) * 1000)),
        )
        payload = event.encode()
        if len(payload) > self.nc.max_payload:
            # The bus, not HTTP, is the tighter limit here (NATS max_payload, 1 MiB by default).
            raise ApiError(
                413,
                f"Request too large for the message bus ({len(payload)} bytes > {self.nc.max_payload}); "
                "send smaller images or fewer messages.",
                "request_too_large",
            )
        try:
            msg = await self.nc.request(
                CHAT_REQUEST, payload, timeout=self.settings.accept_timeout_s, headers=inject_headers()
            )
        except NoRespondersError:
            raise no_worker("No chat worker is running.") from None
        except NatsTimeout:
            return None
        frame = decode_frame(msg.data)
        if not isinstance(frame, AcceptedFrame | ErrorFrame):
            raise ApiError(502, f"unexpected reply from worker: {frame.type}", "protocol_error")
        return frame

    async def _frames(self, sub: Subscription, deadline: float) -> AsyncIterator[AnswerFrame]:
        """The answer's frames in order, without heartbeats; a worker's error frame is raised."""
        expected_seq = 1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ApiError(504, "The model did not finish within the request timeout.", "timeout")
            try:
                msg = await sub.next_msg(timeout=min(self.settings.worker_silence_s, remaining))
            except NatsTimeout:
                if deadline - time.monotonic() <= 0:
                    continue  # the request timed out, not the worker: 504 above
                raise WorkerSilent from None
            try:
                frame = decode_frame(msg.data)
            except ValidationError as exc:
                raise ApiError(
                    502, f"malformed frame from worker: {exc.errors()[0]['loc']}", "protocol_error"
                ) from exc
            if frame.seq != expected_seq:
                # Core NATS keeps order per connection, so a gap means frames were dropped: the
                # answer would look complete while missing text. Fail loudly instead.
                raise WorkerLost(502, f"frame {expected_seq} of the answer was lost", "stream_gap")
            expected_seq += 1
            if isinstance(frame, HeartbeatFrame):
                continue
            if isinstance(frame, ErrorFrame):
                raise ApiError(frame.status, frame.message, frame.code)
            if isinstance(frame, AcceptedFrame):
                raise ApiError(502, "unexpected accept frame in the answer", "protocol_error")
            yield frame
