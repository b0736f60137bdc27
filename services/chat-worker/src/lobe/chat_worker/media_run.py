"""Runs one media request (images, speech, transcription) as an embeddings request runs: its
attempts (lobe.chat_worker.routing.attempts: retries, fallbacks, breakers, limits) pick the
deployment, whose adapter calls the provider (docs/media.md).

Exactly one usage event per request, its kind and units the request's (images with their size
and quality; characters; seconds), recorded before the reply is sent. Images too large for one
reply wait in the MEDIA bucket, one object each, for the gateway to stream out. Speech streams its audio to
`speech.audio.<request_id>` as it arrives; once a chunk is out, the attempt cannot restart.
A transcription's upload is read from the object store for each attempt and deleted at the end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic

from nats.js import JetStreamContext

from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.errors import for_client
from lobe.chat_worker.providers.media import GeneratedImages, Transcribed
from lobe.chat_worker.routing.attempts import Attempt, AttemptLoop, Body
from lobe.chat_worker.run import RunContext
from lobe.chat_worker.transcripts import render
from lobe.shared.bus.objects import ObjectLost, delete_object, put_bytes, read_stream
from lobe.shared.events.chat import Caller, TokenUsage
from lobe.shared.events.media import (
    GeneratedImage,
    ImagesAnswer,
    ImagesRequested,
    MediaFailure,
    SpeechChunk,
    SpeechEnded,
    SpeechRequested,
    TranscriptionAnswer,
    TranscriptionRequested,
)
from lobe.shared.events.units import MediaUnits
from lobe.shared.events.usage import RequestStatus, usage_event
from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest
from lobe.shared.token_ceiling import prompt_token_ceiling

log = logging.getLogger(__name__)
NO_TOKENS = TokenUsage(prompt_tokens=0, completion_tokens=0, basis="provider")
SendChunk = Callable[[SpeechChunk], Awaitable[None]]
Failure = tuple[int, str, str, float | None]


class MediaRun(Generic[Body]):
    """The walk, the one usage event and the failure, shared by the three kinds."""

    def __init__(
        self,
        request_id: str,
        caller: Caller,
        body: Body,
        deadline_ms: int,
        context: RunContext,
        correlation_id: str | None,
    ) -> None:
        self.request_id = request_id
        self.caller = caller
        self.body: Body = body
        self.provider_for = context.provider_for
        self.record_usage = context.record_usage
        self.correlation_id = correlation_id
        self.started_at = time.monotonic()
        self.units: MediaUnits | None = None  # what the provider delivered (None: nothing)
        self.attempts: AttemptLoop[Body] = context.attempts(
            body,
            request_id,
            self.started_at + deadline_ms / 1000,
            prompt_tokens=prompt_token_ceiling(body),
            tokens_used=lambda: 0,
        )

    async def walk(self, attempt: Callable[[Attempt[Body]], Awaitable[None]]) -> Failure | None:
        """Run the attempts and record the usage; the failure the client gets, if any."""
        try:
            await self.attempts.run(attempt)
        except ProviderError as exc:
            log.warning("media request failed: %s", exc, extra={"request_id": self.request_id})
            code, message = for_client(exc)
            await self._record("error", exc.code)
            return exc.status, code, message, exc.retry_after_s
        except asyncio.CancelledError:
            await asyncio.shield(self._record("cancelled", "cancelled"))
            raise
        except Exception:
            log.exception("media run failed", extra={"request_id": self.request_id})
            await self._record("error", "internal_error")
            return 500, "internal_error", "The chat worker failed to process the answer.", None
        await self._record("ok", None)
        return None

    def failure(self, failed: Failure | None) -> MediaFailure | None:
        if failed is None:
            return None
        status, code, message, retry_after_s = failed
        return MediaFailure(status=status, code=code, message=message, retry_after_s=retry_after_s)

    @property
    def route(self):  # type: ignore[no-untyped-def]
        attempt = self.attempts.last
        return attempt.route if attempt else None

    async def _record(self, status: RequestStatus, error_code: str | None) -> None:
        attempt = self.attempts.last
        deployment = attempt.deployment if attempt else None
        await self.record_usage(
            usage_event(
                self.request_id,
                self.caller,
                self.body,
                self.started_at,
                provider=deployment.provider if deployment else "none",
                deployment=deployment.name if deployment else "none",
                usage=NO_TOKENS,
                status=status,
                error_code=error_code,
                correlation_id=self.correlation_id,
                attempts=self.attempts.attempts,
                served_model=(attempt.deployment.model or attempt.model.name) if attempt else None,
                units=self.units or MediaUnits(),
            )
        )


# What a reply needs besides its JSON body (the headers with the trace context), kept free.
REPLY_HEADROOM = 4096


async def run_images(
    run: MediaRun[ImagesRequest], event: ImagesRequested, js: JetStreamContext, max_reply_bytes: int
) -> ImagesAnswer:
    generated: GeneratedImages | None = None

    async def attempt(attempt: Attempt[ImagesRequest]) -> None:
        nonlocal generated
        generated = await run.provider_for(attempt.deployment).generate_images(attempt.body)
        ceiling = event.body.unit_ceiling()
        run.units = ceiling.model_copy(update={"images": len(generated.images)})

    failed = await run.walk(attempt)
    if failed is not None or generated is None:
        return ImagesAnswer(request_id=event.request_id, route=run.route, error=run.failure(failed))
    answer = ImagesAnswer(
        request_id=event.request_id,
        created=generated.created,
        images=[GeneratedImage.model_validate(image) for image in generated.images],
        units=run.units,
        route=run.route,
    )
    if len(answer.model_dump_json()) <= max_reply_bytes - REPLY_HEADROOM:
        return answer
    try:
        images = [
            await _stored(js, f"{event.request_id}.{i}", image) for i, image in enumerate(answer.images)
        ]
    except Exception:
        log.exception("images not stored", extra={"request_id": event.request_id})
        failure = MediaFailure(
            status=503, code="images_not_delivered", message="The images could not be handed over."
        )
        return ImagesAnswer(request_id=event.request_id, route=run.route, error=failure)
    return answer.model_copy(update={"images": images})


async def _stored(js: JetStreamContext, name: str, image: GeneratedImage) -> GeneratedImage:
    """The image with its b64_json moved to object `name` of the MEDIA bucket (a url stays)."""
    if image.b64_json is None:
        return image
    await put_bytes(js, name, image.b64_json.encode())
    return image.model_copy(update={"b64_json": None, "b64_object": name})


async def run_speech(run: MediaRun[SpeechRequest], event: SpeechRequested, send: SendChunk) -> SpeechEnded:
    sent = 0

    async def attempt(attempt: Attempt[SpeechRequest]) -> None:
        nonlocal sent
        audio = run.provider_for(attempt.deployment).speak(attempt.body)
        async with contextlib.aclosing(audio):  # type: ignore[type-var]
            async for data in audio:
                if sent == 0:  # the client has bytes: this attempt is the answer
                    attempt.started = True
                    run.units = event.body.unit_ceiling()
                encoded = base64.b64encode(data).decode()
                await send(SpeechChunk(request_id=event.request_id, seq=sent, audio=encoded))
                sent += 1

    failed = await run.walk(attempt)
    return SpeechEnded(
        request_id=event.request_id, chunks=sent, units=run.units, route=run.route, error=run.failure(failed)
    )


async def run_transcription(
    run: MediaRun[TranscriptionRequest], event: TranscriptionRequested, js: JetStreamContext
) -> TranscriptionAnswer:
    transcribed: Transcribed | None = None
    name = event.body.audio_object

    async def attempt(attempt: Attempt[TranscriptionRequest]) -> None:
        nonlocal transcribed
        audio = read_stream(js, name)
        try:
            transcribed = await run.provider_for(attempt.deployment).transcribe(attempt.body, audio)
        except ObjectLost as exc:
            raise ProviderError(
                "media", 400, "invalid_request", "The uploaded file is gone.", ours=True
            ) from exc
        finally:
            await audio.aclose()  # type: ignore[attr-defined]
        run.units = MediaUnits(audio_seconds=round(transcribed.duration_s, 3))

    try:
        failed = await run.walk(attempt)
    finally:
        await delete_object(js, name)
    if failed is not None or transcribed is None:
        return TranscriptionAnswer(request_id=event.request_id, route=run.route, error=run.failure(failed))
    content, content_type = render(transcribed, event.body.response_format)
    return TranscriptionAnswer(
        request_id=event.request_id,
        content=content,
        content_type=content_type,
        units=run.units,
        route=run.route,
    )
