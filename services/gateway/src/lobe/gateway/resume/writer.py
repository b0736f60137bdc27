"""Keeping one resumable stream's events in Redis, off the client's path.

The output hands over each batch it writes to the client (lobe.gateway.resume.output) and goes
on; one task per stream appends the batches in order, each in one pipelined round trip (its
XADDs and the keys' new expiry). A stream past RESUME_MAX_EVENTS or RESUME_MAX_BYTES stops being
kept: its replay ends with an error event there, so a resume never looks complete when it is not.
Redis failing: the live client is not affected; the replay ends where it stopped (a resume then
reads an error once the keys expire).
"""

from __future__ import annotations

import asyncio
import logging

from lobe.gateway.openai_format import sse_event
from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.gateway.resume.store import END, EVENT, ResumeStore, owner_key, stream_key
from lobe.shared.openai_errors import ApiError

log = logging.getLogger(__name__)

TOO_LONG = ApiError(502, "The answer is too long to be resumed; ask again.", "resume_too_long")
CANCELLED = ApiError(499, "The answer was cancelled: nobody resumed it in time.", "stream_cancelled")


def with_id(request_id: str, seq: int, event: bytes) -> bytes:
    """An SSE event with its id, `<request_id>:<seq>`: what a client sends back as Last-Event-ID."""
    return b"id: %s:%d\n%s" % (request_id.encode(), seq, event)


class ReplayWriter:
    def __init__(self, store: ResumeStore, request_id: str, writing: set[asyncio.Task[None]]) -> None:
        self.store = store
        self.request_id = request_id
        self.key = stream_key(request_id)
        self.writing = writing  # the store's: every writer's task, awaited at shutdown
        self.seq = 0  # events handed over
        self.bytes = 0
        self.pending: list[bytes] = []  # events not written yet, the last one's id `seq`
        self.task: asyncio.Task[None] | None = None
        self.ended = False  # the stream's last event is handed over

    def add(self, events: list[bytes], end: bool) -> None:
        """Keep `events` (already carrying their ids); `end`: the stream ends with them."""
        if self.ended:
            return
        for event in events:
            self.seq += 1
            self.bytes += len(event)
            if self.seq > self.store.max_events or self.bytes > self.store.max_bytes:
                self._end_with(TOO_LONG)
                return
            self.pending.append(event)
        self.ended = end
        self._kick()

    def end(self) -> None:
        """The answer is over without a last event kept (cancelled): a resume reads an error."""
        if not self.ended:
            self.seq += 1
            self._end_with(CANCELLED)

    def _end_with(self, error: ApiError) -> None:
        self.pending.append(with_id(self.request_id, self.seq, sse_event(error.body())))
        self.ended = True
        self._kick()

    def _kick(self) -> None:
        if self.pending and (self.task is None or self.task.done()):
            self.task = asyncio.create_task(self._write())
            self.writing.add(self.task)
            self.task.add_done_callback(self.writing.discard)

    async def _write(self) -> None:
        """Everything pending in one entry per round trip, its id the last event's number: one
        XADD however many events a round trip let pile up (redis-py spends ~20 us of this
        process's CPU per command: per event, that was four times the answer loop's own cost)."""
        redis, window = self.store.redis, self.store.window_s
        try:
            while self.pending:
                events, self.pending = self.pending, []
                batch = b"".join(events)  # events `seq - len(events) + 1` to `seq`
                fields = {EVENT: batch, END: b"1"} if self.ended else {EVENT: batch}
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(self.key, fields, id=f"{self.seq}-0")  # type: ignore[arg-type]
                    pipe.expire(self.key, window)
                    pipe.expire(owner_key(self.request_id), window)
                    await pipe.execute()
        except REDIS_ERRORS as exc:
            log.warning("resumable stream not kept: %r", exc, extra={"request_id": self.request_id})
            self.pending.clear()
            self.ended = True
