"""One streaming HTTP call to a provider on the worker's shared, pooled `aiohttp.ClientSession`.

Four separate budgets (see `Timeouts`): connect (TCP/TLS, aiohttp's own), first byte (request
sent → headers *and* the first body bytes), idle (silence between two body reads) and total.
First-byte and idle are asyncio deadlines around each read, never around a `yield`, so a slow
consumer is not mistaken for a slow provider.

On any exit other than reading the body to its end (error, timeout, cancellation, the consumer
closing the generator) the connection is closed at once rather than returned to the pool: an
unread body would otherwise keep the provider generating (and billing) tokens nobody reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from lobe.chat_worker.deployments import Timeouts

MAX_ERROR_BODY = 64 * 1024


class TransportError(Exception):
    """The exchange itself failed (timeout, refused, cut off, garbled). The adapter's driver turns
    it into a `ProviderError`, retryable only when no output had been yielded yet."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes | aiohttp.MultipartWriter  # a form: a transcription's upload, streamed as read


class UpstreamBody:
    """The response of a started call; `read()` returns the next bytes, b"" at the clean end."""

    def __init__(
        self, response: aiohttp.ClientResponse, timeouts: Timeouts, deadline: float, first: bytes
    ) -> None:
        self.response = response
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        self._timeouts = timeouts
        self._deadline = deadline
        # `open_upstream` read these under the first-byte budget; b"" means the body was empty.
        self._first: bytes | None = first or None
        self.eof = not first

    async def read(self) -> bytes:
        if self._first is not None:
            data, self._first = self._first, None
            return data
        loop = asyncio.get_running_loop()
        idle_until = loop.time() + self._timeouts.idle_s
        until = min(idle_until, self._deadline)
        try:
            async with asyncio.timeout_at(until):
                data = await self.response.content.readany()
        except TimeoutError:
            if until == self._deadline:
                raise TransportError(
                    504, "upstream_timeout", f"answer took longer than {self._timeouts.total_s}s"
                ) from None
            raise TransportError(
                504, "upstream_timeout", f"provider silent for {self._timeouts.idle_s}s mid-stream"
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise TransportError(502, "upstream_disconnected", f"stream cut off: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(502, "upstream_disconnected", f"stream failed: {exc}") from exc
        if not data:
            self.eof = True
        return data

    async def read_all(self, limit: int) -> bytes:
        """The rest of the body, up to `limit` bytes (error bodies, non-streaming answers)."""
        parts: list[bytes] = []
        size = 0
        while size < limit and (data := await self.read()):
            parts.append(data)
            size += len(data)
        return b"".join(parts)[:limit]


@asynccontextmanager
async def open_upstream(
    session: aiohttp.ClientSession, request: UpstreamRequest, timeouts: Timeouts
) -> AsyncIterator[UpstreamBody]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeouts.total_s
    first_byte_until = min(started + timeouts.first_byte_s, deadline)
    client_timeout = aiohttp.ClientTimeout(
        total=None, connect=timeouts.connect_s, sock_connect=timeouts.connect_s, sock_read=None
    )
    response: aiohttp.ClientResponse | None = None
    try:
        try:
            async with asyncio.timeout_at(first_byte_until):
                response = await session.post(
                    request.url, data=request.body, headers=dict(request.headers), timeout=client_timeout
                )
                first = await response.content.readany()
        except aiohttp.ServerTimeoutError as exc:  # aiohttp's connect timeout
            raise TransportError(504, "upstream_timeout", f"connect timed out: {exc}") from exc
        except TimeoutError:
            raise TransportError(
                504, "upstream_timeout", f"no response within {timeouts.first_byte_s}s"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise TransportError(502, "upstream_unreachable", f"cannot connect: {exc}") from exc
        except aiohttp.ClientPayloadError as exc:
            raise TransportError(502, "upstream_disconnected", f"stream cut off: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise TransportError(502, "upstream_error", f"request failed: {exc}") from exc
        body = UpstreamBody(response, timeouts, deadline, first)
        yield body
    except BaseException:
        if response is not None:
            response.close()  # drop the connection: nobody will read the rest
        raise
    else:
        if body.eof:
            response.release()
        else:
            response.close()
