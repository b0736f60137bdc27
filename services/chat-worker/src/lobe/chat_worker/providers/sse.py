"""Incremental `text/event-stream` decoder, shared by every SSE-speaking adapter.

Bytes arrive split at arbitrary points (inside a line, inside a UTF-8 sequence, between the CR
and LF of a CRLF), so decoding is incremental and a trailing CR waits for the next feed.
Lines that are neither fields nor comments are kept in `unframed`: Gemini writes a bare JSON
error object after its last event, which a strict parser would silently drop.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

MAX_PENDING_CHARS = 4 * 1024 * 1024  # a single event larger than this is a broken upstream
MAX_UNFRAMED_CHARS = 64 * 1024


class FramingError(ValueError):
    """The body is not the framing the provider promised (bad UTF-8, runaway line)."""


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


class SSEDecoder:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._pending = ""
        self._data: list[str] = []
        self._event = ""
        self.unframed: list[str] = []
        self._unframed_chars = 0
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        try:
            text = self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise FramingError(f"invalid UTF-8 in event stream: {exc}") from exc
        return self._lines(text, final=False)

    def close(self) -> list[SSEEvent]:
        """End of body. Per the SSE spec an event without its closing blank line is dropped."""
        try:
            text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise FramingError(f"event stream ends inside a UTF-8 sequence: {exc}") from exc
        events = self._lines(text, final=True)
        if self._pending:
            self._line(self._pending, events)
            self._pending = ""
        return events

    def _lines(self, text: str, *, final: bool) -> list[SSEEvent]:
        buf = self._pending + text if self._pending else text
        # A CR at the very end may be the first half of a CRLF: keep it for the next feed.
        held = "\r" if not final and buf.endswith("\r") else ""
        if held:
            buf = buf[:-1]
        if "\r" in buf:  # CRLF and bare CR end lines too; one split beats a regex scan per feed
            buf = buf.replace("\r\n", "\n").replace("\r", "\n")
        *lines, rest = buf.split("\n")
        self._pending = rest + held
        if len(self._pending) > MAX_PENDING_CHARS:
            raise FramingError(f"event stream line exceeds {MAX_PENDING_CHARS} characters")
        events: list[SSEEvent] = []
        for line in lines:
            self._line(line, events)
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or "message", "\n".join(self._data)))
            self._data, self._event = [], ""
            return
        if line[0] == ":":
            self.comments += 1
            return
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data" and sep:
            self._data.append(value)
        elif field == "event" and sep:
            self._event = value
        elif field in ("id", "retry") and sep:
            pass
        elif self._unframed_chars < MAX_UNFRAMED_CHARS:
            self.unframed.append(line)
            self._unframed_chars += len(line)
