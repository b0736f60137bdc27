"""Publishes one request's reply frames in order, numbered, with heartbeats while idle."""

from __future__ import annotations

import asyncio
import contextlib
import time

from nats.aio.client import Client as NATS

from lobe.shared.events.chat import (
    DeltaFrame,
    DoneFrame,
    ErrorFrame,
    HeartbeatFrame,
    UsageFrame,
)

Frame = DeltaFrame | HeartbeatFrame | UsageFrame | DoneFrame | ErrorFrame


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
        self._heartbeats: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FrameSink:
        self._heartbeats = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._heartbeats:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def send(self, frame: Frame) -> None:
        if self.closed:
            return
        self.last_sent = time.monotonic()
        await self.nc.publish(self.subject, frame.model_dump_json(exclude_none=True).encode())
        if isinstance(frame, DoneFrame | ErrorFrame):
            self.closed = True

    async def _beat(self) -> None:
        # Heartbeats only fill silences: a stream that is flowing needs none.
        while not self.closed:
            wait = self.heartbeat_s - (time.monotonic() - self.last_sent)
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            await self.send(HeartbeatFrame(request_id=self.request_id, seq=self.next_seq()))
