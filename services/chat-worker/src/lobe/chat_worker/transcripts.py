"""A transcript in the client's format, rendered from the provider's verbose_json (which the
worker always asks for: its `duration` prices the request): json, text, srt, vtt, verbose_json."""

from __future__ import annotations

import json

from lobe.chat_worker.providers.media import Transcribed

CONTENT_TYPES = {"json": "application/json", "verbose_json": "application/json", "text": "text/plain"}


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cues(transcript: Transcribed, separator: str) -> list[str]:
    segments = transcript.segments or [{"start": 0.0, "end": transcript.duration_s, "text": transcript.text}]
    return [
        f"{_clock(s['start'], separator)} --> {_clock(s['end'], separator)}\n{s['text'].strip()}\n"
        for s in segments
    ]


def render(transcript: Transcribed, response_format: str) -> tuple[str, str]:
    """(body, content type) as OpenAI answers in that format."""
    if response_format == "text":
        return transcript.text + "\n", "text/plain"
    if response_format == "srt":
        cues = _cues(transcript, ",")
        return "\n".join(f"{i}\n{cue}" for i, cue in enumerate(cues, 1)), "text/plain"
    if response_format == "vtt":
        return "WEBVTT\n\n" + "\n".join(_cues(transcript, ".")), "text/vtt"
    if response_format == "verbose_json":
        document = {
            "task": "transcribe",
            "language": transcript.language or "",
            "duration": transcript.duration_s,
            "text": transcript.text,
            "segments": [{"id": i, **s} for i, s in enumerate(transcript.segments)],
        }
        return json.dumps(document), "application/json"
    return json.dumps({"text": transcript.text}), "application/json"
