"""Incremental NDJSON decoder (Ollama's native API): one JSON value per LF-terminated line."""

from __future__ import annotations

import codecs
import json
from typing import Any

from lobe.chat_worker.providers.sse import MAX_PENDING_CHARS, FramingError


class NDJSONDecoder:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._pending = ""

    def feed(self, chunk: bytes) -> list[Any]:
        try:
            text = self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise FramingError(f"invalid UTF-8 in NDJSON stream: {exc}") from exc
        buf = self._pending + text if self._pending else text
        *lines, self._pending = buf.split("\n")
        if len(self._pending) > MAX_PENDING_CHARS:
            raise FramingError(f"NDJSON line exceeds {MAX_PENDING_CHARS} characters")
        return [_parse(line) for line in lines if line.strip()]

    def close(self) -> list[Any]:
        """End of body: a last line without its LF still counts (`stream: false` bodies)."""
        try:
            tail = self._pending + self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise FramingError(f"NDJSON stream ends inside a UTF-8 sequence: {exc}") from exc
        self._pending = ""
        return [_parse(tail)] if tail.strip() else []


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise FramingError(f"malformed NDJSON line {line[:200]!r}: {exc}") from exc
