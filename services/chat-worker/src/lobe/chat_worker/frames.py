"""Publishes one request's reply frames in order, numbered, with heartbeats while idle.

Deltas are coalesced without a timer: `send` only queues a frame, and a pump task publishes what
is queued when it next runs, the next turn of the event loop. The deltas the provider's stream
yields without waiting (chunks that came in one read) are so published as one `deltas` frame;
a delta that comes alone goes out one loop turn later as a `delta` frame, with no added wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from nats.aio.client import Client as NATS

from lobe.shared.events.chat import DoneFrame, ErrorFrame, HeartbeatFrame, UsageFrame
from lobe.shared.events.chat_wire import ENCODE, WireDelta, WireDeltas

Frame = WireDelta | HeartbeatFrame | UsageFrame | DoneFrame | ErrorFrame

# At most this many deltas in one message: a bound far below NATS max_payload (1 MiB) for
# token-sized deltas, whatever a single read of the provider's stream held.
MAX_COALESCED = 64


class FrameSink:
    """The worker's side of a reply subject. Sequence numbers start at 1 (0 is the accept)."""

    def __init__(self, nc: NATS, subject: str, request_id: str, heartbeat_s: float) -> None:
        self.nc = nc
        self.subject = subject
        self.request_id = request_id
        self.heartbeat_s = heartbeat_s
        self.seq = 0
        self.last_sent = time.monotonic()
        self.closed = False
        self.published = 0  # NATS messages, for tests and benchmarks
        self._queued: list[Frame] = []
        self._ready = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FrameSink:
        self._pump = asyncio.create_task(self._publish_queued())
        self._heartbeats = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._heartbeats:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats
        if self._pump:
            # What was sent goes out (a cancelled run's last deltas included), then the pump ends.
            self.closed = True
            self._ready.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(self._pump)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def send(self, frame: Frame) -> None:
        """Queue `frame`; a terminal frame returns once it is published (as each frame did
        before deltas were coalesced), raising what publishing raised."""
        if self.closed:
            return
        pump = self._pump
        if pump is None:
            raise RuntimeError("FrameSink.send outside `async with`")
        if pump.done():
            pump.result()  # the publish that failed: its error is this run's
        self.last_sent = time.monotonic()
        self._queued.append(frame)
        self._ready.set()
        if isinstance(frame, DoneFrame | ErrorFrame):
            self.closed = True
            await asyncio.shield(pump)

    async def _publish_queued(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queued:
                frames, self._queued = self._queued, []
                await self._publish(frames)
            if self.closed:
                return

    async def _publish(self, frames: list[Frame]) -> None:
        deltas: list[WireDelta] = []
        for frame in frames:
            if isinstance(frame, WireDelta):
                deltas.append(frame)
                if len(deltas) == MAX_COALESCED:
                    await self._publish_deltas(deltas)
                    deltas = []
                continue
            if deltas:
                await self._publish_deltas(deltas)
                deltas = []
            self.published += 1
            await self.nc.publish(self.subject, frame.model_dump_json(exclude_none=True).encode())
        if deltas:
            await self._publish_deltas(deltas)

    async def _publish_deltas(self, deltas: list[WireDelta]) -> None:
        # One delta: the `delta` frame every reader knows; several: one `deltas` frame (3.10.0).
        only = deltas[0] if len(deltas) == 1 else None
        frame = only or WireDeltas(request_id=self.request_id, seq=deltas[0].seq, deltas=deltas)
        self.published += 1
        await self.nc.publish(self.subject, ENCODE(frame))

    async def _beat(self) -> None:
        # Heartbeats only fill silences: a stream that is flowing needs none.
        while not self.closed:
            wait = self.heartbeat_s - (time.monotonic() - self.last_sent)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self.send(HeartbeatFrame(request_id=self.request_id, seq=self.next_seq()))
