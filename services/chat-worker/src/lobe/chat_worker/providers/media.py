"""What an adapter's media calls return, and the HTTP exchanges every HTTP adapter shares
(docs/media.md): images and transcriptions are one request and one JSON answer; speech is one
request whose audio body is streamed on as it arrives.

The adapter supplies the translated request (`images_request_for`, `speech_request_for`,
`transcription_request_for`) and the reading of the answer; the status policy and error bodies
are its chat ones (`error_for`). Every failure before the first audio byte may be retried.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lobe.chat_worker.http.upstream import TransportError, UpstreamBody, UpstreamRequest, open_upstream
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.retry_after import retry_after_s

if TYPE_CHECKING:
    from lobe.chat_worker.providers.http_base import HttpProvider

# Ten 1536x1024 PNGs in base64 are ~40 MB; an answer past this is refused rather than read.
MAX_MEDIA_DOCUMENT = 64 * 1024 * 1024
MAX_TRANSCRIPT_DOCUMENT = 16 * 1024 * 1024


@dataclass(frozen=True)
class GeneratedImages:
    created: int
    images: list[dict[str, str]]  # each: b64_json or url, and revised_prompt when given


@dataclass(frozen=True)
class Transcribed:
    """The provider's verbose_json transcript: text, duration (seconds) and segments."""

    text: str
    duration_s: float
    segments: list[dict[str, Any]] = field(default_factory=list)
    language: str | None = None


def _malformed(adapter: HttpProvider, what: str, exc: Exception) -> ProviderError:
    message = f"unreadable {adapter.name} {what} answer: {type(exc).__name__}: {exc}"
    return ProviderError(adapter.name, 502, "upstream_malformed", message, True)


async def _refused(adapter: HttpProvider, upstream: UpstreamBody) -> ProviderError:
    raw = await upstream.read_all(MAX_MEDIA_DOCUMENT)
    error = adapter.error_for(upstream.status, raw)
    return dataclasses.replace(error, retry_after_s=retry_after_s(upstream.response.headers))


async def json_over_http(adapter: HttpProvider, request: UpstreamRequest, limit: int) -> Any:
    """POST, read the whole JSON answer, map failures as chat does."""
    try:
        async with open_upstream(adapter.session, request, adapter.deployment.timeouts) as upstream:
            if upstream.status >= 400:
                raise await _refused(adapter, upstream)
            raw = await upstream.read_all(limit)
        return json.loads(raw)
    except TransportError as exc:
        raise ProviderError(adapter.name, exc.status, exc.code, exc.message, True) from exc
    except ValueError as exc:
        raise _malformed(adapter, "JSON", exc) from exc


def images_from(adapter: HttpProvider, document: Any) -> GeneratedImages:
    try:
        images = []
        for item in document["data"]:
            image = {k: str(item[k]) for k in ("b64_json", "url", "revised_prompt") if item.get(k)}
            if "b64_json" not in image and "url" not in image:
                raise ValueError("an image with neither b64_json nor url")
            images.append(image)
        return GeneratedImages(created=int(document.get("created") or 0), images=images)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _malformed(adapter, "images", exc) from exc


def transcribed_from(adapter: HttpProvider, document: Any) -> Transcribed:
    try:
        segments = [
            {"start": float(s["start"]), "end": float(s["end"]), "text": str(s["text"])}
            for s in document.get("segments") or []
        ]
        return Transcribed(
            text=str(document["text"]),
            duration_s=float(document.get("duration") or 0),
            segments=segments,
            language=document.get("language"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _malformed(adapter, "transcription", exc) from exc


async def audio_over_http(adapter: HttpProvider, request: UpstreamRequest) -> AsyncIterator[bytes]:
    """The provider's audio bytes as they arrive. A failure after the first is not retryable:
    the client has part of the file (`started`)."""
    started = False
    try:
        async with open_upstream(adapter.session, request, adapter.deployment.timeouts) as upstream:
            if upstream.status >= 400:
                raise await _refused(adapter, upstream)
            while data := await upstream.read():
                started = True
                yield data
    except TransportError as exc:
        raise ProviderError(adapter.name, exc.status, exc.code, exc.message, not started, started) from exc
