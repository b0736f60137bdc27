"""The SSE output of a resumable stream: every event with its id, every write also kept in Redis
(lobe.gateway.resume.writer), and a client that is gone no reason to stop: the answer goes on
into the replay, for whoever resumes it (lobe.gateway.resume.detach decides for how long)."""

from __future__ import annotations

import logging

from aiohttp import web

from lobe.gateway.outputs import ChunkSource, SseOutput
from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.gateway.resume.detach import DETACHED
from lobe.gateway.resume.store import RESUME
from lobe.gateway.resume.writer import ReplayWriter, with_id

log = logging.getLogger(__name__)
RESUME_HEADER = "X-Lobe-Resume"  # the answer's resume path, on a resumable stream only


def resume_path(request_id: str) -> str:
    return f"/v1/chat/completions/{request_id}/stream"


class ResumableSseOutput(SseOutput):
    def __init__(
        self, request: web.Request, writer: ChunkSource, headers: dict[str, str], replay: ReplayWriter
    ) -> None:
        super().__init__(request, writer, headers)
        self.replay = replay
        self.request_id = replay.request_id
        self.seq = 0
        self.client_gone = False

    def _hold(self, chunk: bytes) -> None:
        self.seq += 1
        super()._hold(with_id(self.request_id, self.seq, chunk))

    async def _opened(self) -> web.StreamResponse:
        try:
            return await super()._opened()
        except ConnectionError:
            self.client_gone = True
            assert self.response is not None
            return self.response

    async def _send(self, response: web.StreamResponse, eof: bool) -> None:
        self.replay.add(self.held, end=eof)
        if self.client_gone:
            self._take()
            return
        try:
            await super()._send(response, eof)
        except ConnectionError:
            self.client_gone = True  # what it missed is in the replay

    def close(self) -> None:
        super().close()
        self.replay.end()  # cancelled before its last event: a resume must read an error


async def sse_output(
    request: web.Request, chunks: ChunkSource, headers: dict[str, str], request_id: str, user_id: str
) -> SseOutput:
    """A resumable output when the client asked for one (the request runs detached) and its
    replay opened; otherwise plain SSE, whose client leaving cancels the answer at once."""
    detached = request.get(DETACHED)
    if detached is None:
        return SseOutput(request, chunks, headers)
    store = request.app[RESUME]
    try:
        await store.open(request_id, user_id)
    except REDIS_ERRORS as exc:
        log.warning("stream not resumable: %r", exc, extra={"request_id": request_id})
        return SseOutput(request, chunks, headers)
    detached.resumable(request_id)
    headers[RESUME_HEADER] = resume_path(request_id)
    return ResumableSseOutput(request, chunks, headers, ReplayWriter(store, request_id, store.writing))
