"""The OpenAI media wire, which OpenAI and the OpenAI-compatible servers (LocalAI, vLLM's audio
endpoints, Speaches, LiteLLM, ...) share (docs/media.md):

- `POST /images/generations`: JSON in, `{"created": ..., "data": [{"b64_json" | "url", ...}]}` out;
- `POST /audio/speech`: JSON in, the audio file's bytes out (streamed, chunked);
- `POST /audio/transcriptions`: multipart/form-data in (the file streamed from the object store,
  never whole in memory), always asked as `verbose_json` (its `duration` prices the request); the
  worker renders the client's format from it (lobe.chat_worker.transcripts).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest


def images_body(body: ImagesRequest, model: str) -> bytes:
    payload: dict[str, Any] = {"model": model, "prompt": body.prompt, "n": body.n}
    for name in ("size", "quality", "response_format", "style", "user"):
        value = getattr(body, name)
        if value is not None:
            payload[name] = value
    return json.dumps(payload, separators=(",", ":")).encode()


def speech_body(body: SpeechRequest, model: str) -> bytes:
    payload: dict[str, Any] = {
        "model": model,
        "input": body.input,
        "voice": body.voice,
        "response_format": body.response_format,
    }
    for name in ("speed", "instructions"):
        value = getattr(body, name)
        if value is not None:
            payload[name] = value
    return json.dumps(payload, separators=(",", ":")).encode()


def transcription_form(
    body: TranscriptionRequest, model: str, audio: AsyncIterator[bytes]
) -> aiohttp.MultipartWriter:
    """The multipart body, its file part an async iterator (aiohttp sends it chunked, as read)."""
    form = aiohttp.MultipartWriter("form-data")
    fields: dict[str, str] = {"model": model, "response_format": "verbose_json"}
    if body.language:
        fields["language"] = body.language
    if body.prompt:
        fields["prompt"] = body.prompt
    if body.temperature is not None:
        fields["temperature"] = str(body.temperature)
    for name, value in fields.items():
        part = form.append(value)
        part.set_content_disposition("form-data", name=name)
    part = form.append(aiohttp.AsyncIterablePayload(audio, content_type="application/octet-stream"))
    part.set_content_disposition("form-data", name="file", filename=body.filename)
    return form
