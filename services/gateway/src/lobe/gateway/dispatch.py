"""The gateway's side of the chat protocol on NATS (see lobe.shared.events.chat).

A `Dispatch` hands one request to a worker and yields its answer's frames, hiding worker choice,
heartbeats and re-dispatch. Every failure surfaces as an `ApiError`; `WorkerLost` says the worker
vanished after the answer had started. It knows which worker owns the request (`owner`), so a
cancel goes to that worker only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

from pydantic import ValidationError

from lobe.gateway.route_headers import error_headers
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus, MessageTooLarge, NoResponders, Replies
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    CHAT_CANCEL,
    CHAT_REPLY,
    CHAT_REQUEST,
    AcceptedFrame,
    Caller,
    CancelReason,
    ChatCancelled,
    ChatEndpoint,
    ChatRequested,
    DoneFrame,
    ErrorFrame,
    HeartbeatFrame,
    UsageFrame,
    decode_frame,
    may_restart,
)
from lobe.shared.events.chat_wire import MALFORMED_FRAME, WireDelta, WireDeltas, decode_reply, malformation
from lobe.shared.events.leases import LeaseCharge
from lobe.shared.openai_errors import ApiError

log = logging.getLogger(__name__)

AnswerFrame = WireDelta | UsageFrame | DoneFrame


class Idle:
    """Yielded among an answer's frames when the next one has not arrived: what the output holds
    may be written now. The frames that arrive together are so written together, one system call
    for many chunks, and a frame that arrives alone is written at once (lobe.gateway.outputs)."""


IDLE = Idle()
SATURATED_BACKOFF_S = 0.05
SATURATED_BACKOFF_MAX_S = 0.2


class WorkerLost(ApiError):
    """The worker went silent (died) after output had started: the answer is incomplete."""


class WorkerSilent(Exception):
    """No frame for WORKER_SILENCE_S: the worker is presumed dead."""


def no_worker(message: str) -> ApiError:
    return ApiError(503, message, "no_worker_available", headers={"Retry-After": "1"})


class ChatDispatcher:
    def __init__(self, bus: Bus, settings: GatewaySettings) -> None:
        self.bus = bus
        self.settings = settings
        # Cancels for workers that accepted after their client had left (see Dispatch._hand_over).
        self._late: set[asyncio.Task[None]] = set()

    def open(
        self,
        request_id: str,
        caller: Caller,
        body: ChatCompletionRequest,
        endpoint: ChatEndpoint = "chat",
        lease: LeaseCharge | None = None,
    ) -> Dispatch:
        return Dispatch(self, request_id, caller, body, endpoint, lease)

    async def cancel(self, worker_id: str, request_id: str, reason: CancelReason) -> None:
        cancel = ChatCancelled(request_id=request_id, reason=reason)
        await self.bus.publish(CHAT_CANCEL, cancel, worker_id=worker_id)

    def cancel_when_accepted(self, request_id: str, handover: asyncio.Future[bytes]) -> None:
        """The client left while `handover` was on its way: if a worker takes it, cancel it."""

        def accepted(done: asyncio.Future[bytes]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            try:
                frame = decode_frame(done.result())
            except ValidationError:
                return
            if isinstance(frame, AcceptedFrame):
                task = asyncio.create_task(self.cancel(frame.worker_id, request_id, "client_disconnected"))
                self._late.add(task)
                task.add_done_callback(self._late.discard)

        handover.add_done_callback(accepted)


class Dispatch:
    """One request's hand-over to a worker, and the frames of its answer."""

    def __init__(
        self,
        dispatcher: ChatDispatcher,
        request_id: str,
        caller: Caller,
        body: ChatCompletionRequest,
        endpoint: ChatEndpoint = "chat",
        lease: LeaseCharge | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.bus = dispatcher.bus
        self.settings = dispatcher.settings
        self.request_id = request_id
        self.caller = caller
        self.body = body
        self.endpoint = endpoint  # the worker checks the model serves it, and records its usage kind
        self.lease = lease  # the budget lease it was admitted under: the worker's usage event settles it
        # The worker answering now: set by its accept, cleared when it is presumed dead. While
        # set, that worker will record the request's usage, whatever happens to the answer.
        self.owner: str | None = None
        self.accepted_at: float | None = None  # time.monotonic() of the first worker's accept

    async def cancel(self, reason: CancelReason) -> None:
        """Stop the owner's provider call (and the spend) now, not when the answer would end."""
        if self.owner is not None:
            await self.dispatcher.cancel(self.owner, self.request_id, reason)

    async def frames(self) -> AsyncGenerator[AnswerFrame | Idle, None]:
        settings = self.settings
        deadline = time.monotonic() + settings.request_timeout_s
        saturated_until = time.monotonic() + settings.saturation_wait_s
        attempt = 1  # dispatches that a worker accepted or let time out; refusals for load do not count
        offer = 0
        while True:
            offer += 1
            # A reply subject per offer: frames from a worker presumed dead can never mix in.
            replies = await self.bus.replies(CHAT_REPLY, request_id=self.request_id, offer=str(offer))
            try:
                accepted = await self._hand_over(replies.subject, attempt, deadline)
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
                self.owner = accepted.worker_id
                if self.accepted_at is None:
                    self.accepted_at = time.monotonic()
                started = False
                try:
                    async for frame in self._frames(replies, deadline):
                        started = started or isinstance(frame, WireDelta)
                        yield frame
                        if isinstance(frame, DoneFrame):
                            return
                except WorkerSilent:
                    self.owner = None
                    if not may_restart(started) or attempt >= settings.dispatch_attempts:
                        raise WorkerLost(
                            502,
                            "The chat worker stopped responding; the answer is incomplete.",
                            "worker_lost",
                        ) from None
                    log.warning(
                        "worker silent before first token; re-dispatching",
                        extra={"request_id": self.request_id},
                    )
                attempt += 1
            finally:
                await replies.close()

    async def _hand_over(
        self, reply_to: str, attempt: int, deadline: float
    ) -> AcceptedFrame | ErrorFrame | None:
        event = ChatRequested(
            request_id=self.request_id,
            caller=self.caller,
            body=self.body,
            reply_to=reply_to,
            attempt=attempt,
            deadline_ms=max(1, int((deadline - time.monotonic()) * 1000)),
            endpoint=self.endpoint,
            lease=self.lease,
        )
        # The raw exchange, not `request`: a worker answers an AcceptedFrame or a refusal frame,
        # and no worker at all is a 503 at once where a slow one is re-offered.
        handover = asyncio.ensure_future(
            self.bus.exchange(CHAT_REQUEST, event, self.settings.accept_timeout_s)
        )
        try:
            reply = await asyncio.shield(handover)
        except NoResponders:
            raise no_worker("No chat worker is running.") from None
        except TimeoutError:
            return None
        except MessageTooLarge as exc:
            # The bus, not HTTP, is the tighter limit here (NATS max_payload, 1 MiB by default).
            raise ApiError(
                413,
                f"Request too large for the message bus ({exc}); send smaller images or fewer messages.",
                "request_too_large",
            ) from None
        except asyncio.CancelledError:
            self.dispatcher.cancel_when_accepted(self.request_id, handover)
            raise
        frame = decode_frame(reply)
        if not isinstance(frame, AcceptedFrame | ErrorFrame):
            raise ApiError(502, f"unexpected reply from worker: {frame.type}", "protocol_error")
        return frame

    async def _frames(self, replies: Replies, deadline: float) -> AsyncIterator[AnswerFrame | Idle]:
        """The answer's frames in order, without heartbeats; a worker's error frame is raised.
        `IDLE` comes each time the next frame is not here yet, before waiting for it."""
        expected_seq = 1
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ApiError(504, "The model did not finish within the request timeout.", "timeout")
            try:
                if replies.empty():
                    yield IDLE
                    try:
                        # asyncio.timeout, not next_msg's wait_for: no task and no uuid4 per frame.
                        async with asyncio.timeout(min(self.settings.worker_silence_s, remaining)):
                            frame = decode_reply(await replies.get())
                    except TimeoutError:
                        if deadline - time.monotonic() <= 0:
                            continue  # the request timed out, not the worker: 504 above
                        raise WorkerSilent from None
                else:
                    frame = decode_reply(replies.get_nowait())
            except MALFORMED_FRAME as exc:
                log.error("malformed frame from a worker: %s", exc, extra={"request_id": self.request_id})
                raise ApiError(
                    502, f"malformed frame from worker: {malformation(exc)}", "protocol_error"
                ) from exc
            if frame.seq != expected_seq:
                # Core NATS keeps order per connection, so a gap means frames were dropped: the
                # answer would look complete while missing text. Fail loudly instead (the worker
                # lives on: it is cancelled and records the usage).
                raise ApiError(502, f"frame {expected_seq} of the answer was lost", "stream_gap")
            if isinstance(frame, WireDeltas):
                # Deltas the worker had ready together: each its own frame from here on (one SSE
                # chunk, one resumable event id), numbered as if it had come alone.
                for delta in frame.deltas:
                    if delta.seq != expected_seq:
                        raise ApiError(502, f"frame {expected_seq} of the answer was lost", "stream_gap")
                    expected_seq += 1
                    yield delta
                continue
            expected_seq += 1
            if isinstance(frame, HeartbeatFrame):
                continue
            if isinstance(frame, ErrorFrame):
                raise ApiError(
                    frame.status,
                    frame.message,
                    frame.code,
                    headers=error_headers(frame, self.settings.expose_deployment_names),
                )
            if isinstance(frame, AcceptedFrame):
                raise ApiError(502, "unexpected accept frame in the answer", "protocol_error")
            yield frame
