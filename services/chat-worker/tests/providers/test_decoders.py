"""The shared SSE and NDJSON decoders: any split of the bytes gives the same events."""

from __future__ import annotations

import random

import pytest

from lobe.chat_worker.providers.ndjson import NDJSONDecoder
from lobe.chat_worker.providers.sse import FramingError, SSEDecoder, SSEEvent
from lobe.devtools.provider_fixtures import fixture_files, fixtures_root

SSE_BODY = (
    ': keep-alive\r\n\r\nevent: delta\r\ndata: {"t": "h\u00e9llo \U0001f60a"}\r\n\r\n'
    "data: line one\ndata: line two\n\nid: 7\nretry: 10\ndata:no-space\r\r"
).encode()
SSE_EVENTS = [
    SSEEvent("delta", '{"t": "h\u00e9llo \U0001f60a"}'),
    SSEEvent("message", "line one\nline two"),
    SSEEvent("message", "no-space"),
]


def decode_sse(body: bytes, cuts: list[int]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    start = 0
    for cut in [*cuts, len(body)]:
        events += decoder.feed(body[start:cut])
        start = cut
    return events + decoder.close()


def test_sse_gives_the_same_events_for_every_single_split_point() -> None:
    for cut in range(len(SSE_BODY) + 1):
        assert decode_sse(SSE_BODY, [cut]) == SSE_EVENTS, cut


def test_sse_byte_by_byte_handles_crlf_cr_and_multibyte_characters() -> None:
    assert decode_sse(SSE_BODY, list(range(1, len(SSE_BODY)))) == SSE_EVENTS


@pytest.mark.parametrize("name", [n for d in ("openai", "anthropic", "gemini") for n in fixture_files(d)])
def test_sse_random_splits_of_every_transcript_match_the_unsplit_parse(name: str) -> None:
    body = (fixtures_root() / name).read_bytes()
    whole = decode_sse(body, [])
    rng = random.Random(name)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, len(body) // 3)))
        assert decode_sse(body, cuts) == whole


def test_sse_counts_comments_and_keeps_unframed_lines() -> None:
    decoder = SSEDecoder()
    decoder.feed(b': ping\n\ndata: {}\n\n{\n  "error": 1\n}\n')
    decoder.close()
    assert decoder.comments == 1
    assert decoder.unframed == ["{", '  "error": 1', "}"]


def test_sse_event_without_closing_blank_line_is_dropped() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b") == [SSEEvent("message", "a")]
    assert decoder.close() == []


def test_sse_rejects_invalid_utf8_naming_it() -> None:
    with pytest.raises(FramingError, match="UTF-8"):
        SSEDecoder().feed(b"data: \xff\xfe\n\n")


def test_ndjson_every_split_point_gives_the_same_objects_and_a_final_line_without_lf_counts() -> None:
    body = '{"a":"\u00e9\U0001f60a"}\n\n{"b":2}\n{"c":3}'.encode()
    for cut in range(len(body) + 1):
        decoder = NDJSONDecoder()
        got = decoder.feed(body[:cut]) + decoder.feed(body[cut:]) + decoder.close()
        assert got == [{"a": "\u00e9\U0001f60a"}, {"b": 2}, {"c": 3}], cut


def test_ndjson_malformed_line_is_named_in_the_error() -> None:
    with pytest.raises(FramingError, match=r"malformed NDJSON line '\{\"done\": tru'"):
        NDJSONDecoder().feed(b'{"done": tru\n')
