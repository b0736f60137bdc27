"""A resumable request runs apart from its HTTP handler, so that its client leaving does not end it.

The gateway cancels a handler the moment its client disconnects (handler_cancellation), and a
plain stream's answer is cancelled with it, to save the spend. A client that asked for a
resumable stream (`X-Lobe-Resumable: true`) is expected back: its request runs in a task of its
own, the handler only awaits it, and a disconnect starts RESUME_GRACE_S. Resumed by then (on any
replica: the mark is in Redis), the answer runs to its end into the replay; not resumed, it is
cancelled as a plain one would have been, only later. A request that never became resumable
(not a stream, Redis away) is cancelled at once, as today.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.gateway.resources import SETTINGS
from lobe.gateway.resume.store import RESUME, ResumeStore

log = logging.getLogger(__name__)
RESUMABLE_HEADER = "X-Lobe-Resumable"  # the client's opt-in


def wants_resume(request: web.Request) -> bool:
    return request.headers.get(RESUMABLE_HEADER, "").strip().lower() in {"true", "1", "on"}


def detached_if_resumable(
    request: web.Request, handling: Coroutine[Any, Any, web.StreamResponse]
) -> Coroutine[Any, Any, web.StreamResponse]:
    """An endpoint's handling, run apart from its handler when the client asked for a resumable
    stream (whether it becomes one is the output's: lobe.gateway.resume.output.sse_output)."""
    if not wants_resume(request):
        return handling
    detached = request[DETACHED] = Detached(request.app[RESUME], request.app[SETTINGS].resume_grace_s)
    return detached.run(handling)


class Detached:
    def __init__(self, store: ResumeStore, grace_s: float) -> None:
        self.store = store
        self.grace_s = grace_s
        self.task: asyncio.Task[web.StreamResponse] | None = None
        self.request_id: str | None = None  # set once the stream is resumable

    def resumable(self, request_id: str) -> None:
        self.request_id = request_id

    async def run(self, handling: Coroutine[Any, Any, web.StreamResponse]) -> web.StreamResponse:
        task = self.task = asyncio.create_task(handling)
        self.store.detached.add(task)
        task.add_done_callback(_settled)
        task.add_done_callback(self.store.detached.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                self._client_left(task)
            raise

    def _client_left(self, task: asyncio.Task[web.StreamResponse]) -> None:
        if self.request_id is None or self.grace_s == 0:
            task.cancel()
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self.grace_s, lambda: self.store.detached.add(loop.create_task(self._decide(task))))

    async def _decide(self, task: asyncio.Task[web.StreamResponse]) -> None:
        """The grace is over: cancel the answer unless someone resumed it (Redis away: cancel;
        the replay is not being kept either)."""
        assert self.request_id is not None
        if task.done():
            return
        try:
            resumed = await self.store.was_resumed(self.request_id)
        except REDIS_ERRORS as exc:
            log.warning("resume mark not read: %r", exc, extra={"request_id": self.request_id})
            resumed = False
        if not resumed:
            task.cancel()


def _settled(task: asyncio.Task[web.StreamResponse]) -> None:
    """Its handler may be gone: nobody else reads how it ended (an error was the client's, who left)."""
    if not task.cancelled():
        task.exception()


DETACHED = web.RequestKey("lobe.detached", Detached)
