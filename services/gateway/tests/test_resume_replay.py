"""A resumable stream's replay on real Redis: batches kept as one entry each, read back from any
event on exactly (none twice, none missing), bounded, and ended with an error when it stops short."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import make_mocked_request
from redis.asyncio import Redis

from lobe.gateway.resume.routes import events_after, resumes_after
from lobe.gateway.resume.store import END, EVENT, ResumeStore, stream_key
from lobe.gateway.resume.writer import ReplayWriter, with_id
from lobe.gateway.settings import GatewaySettings
from lobe.shared.openai_errors import ApiError

RID = "req1"


def event(seq: int) -> bytes:
    return with_id(RID, seq, b'data: {"n":%d}\n\n' % seq)


def seqs(raw: bytes) -> list[int]:
    return [int(e.split(b"\n")[0].rpartition(b":")[2]) for e in raw.split(b"\n\n") if e]


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[ResumeStore]:
    redis = Redis.from_url(redis_url)
    yield ResumeStore(redis, GatewaySettings(resume_max_events=10, resume_max_bytes=4096))
    await redis.aclose()


async def kept(store: ResumeStore, after: int) -> tuple[bytes, bool]:
    """What a resume after event `after` reads (as the resume route does), and whether it ended."""
    entries = await store.read(RID, f"{after}-0", 100, 10)
    batches = [fields[EVENT] for _, fields in entries]
    if batches:
        batches[0] = events_after(batches[0], after)
    return b"".join(batches), bool(entries) and END in entries[-1][1]


async def written(writer: ReplayWriter) -> None:
    while writer.task is not None and not writer.task.done():
        await asyncio.gather(writer.task)


async def test_a_resume_from_any_event_reads_exactly_the_events_after_it(store: ResumeStore) -> None:
    writer = ReplayWriter(store, RID, store.writing)
    writer.add([event(1), event(2), event(3)], end=False)  # three events in one write: one entry
    await written(writer)
    writer.add([event(4)], end=False)
    writer.add([event(5), event(6)], end=True)  # added while nothing is in flight, or joining it
    await written(writer)
    for after in range(7):
        raw, ended = await kept(store, after)
        assert seqs(raw) == list(range(after + 1, 7)), after
        assert ended == (after < 6)  # past the last event there is nothing, not even the end
    assert await store.redis.xlen(stream_key(RID)) <= 3  # one entry per write, not per event


async def test_a_replay_past_its_bound_ends_with_an_error_event(store: ResumeStore) -> None:
    writer = ReplayWriter(store, RID, store.writing)
    writer.add([event(n) for n in range(1, 13)], end=False)  # past RESUME_MAX_EVENTS (10)
    writer.add([event(13)], end=True)  # nothing more is kept
    await written(writer)
    raw, ended = await kept(store, 0)
    last = raw.split(b"\n\n")[-2]
    assert seqs(raw)[:-1] == list(range(1, 11))
    assert ended
    assert json.loads(last.split(b"data: ")[1])["error"]["code"] == "resume_too_long"


async def test_an_answer_that_stops_short_ends_its_replay_with_an_error(store: ResumeStore) -> None:
    writer = ReplayWriter(store, RID, store.writing)
    writer.add([event(1)], end=False)
    writer.end()  # cancelled: no [DONE] and no error event from the answer itself
    await written(writer)
    raw, ended = await kept(store, 1)
    assert ended
    assert seqs(raw) == [2]
    assert b'"code":"stream_cancelled"' in raw


async def test_the_replay_expires_with_its_window(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    store = ResumeStore(redis, GatewaySettings(resume_window_s=7))
    await store.open(RID, "alice")
    writer = ReplayWriter(store, RID, store.writing)
    writer.add([event(1)], end=True)
    await written(writer)
    ttls = [await redis.ttl(stream_key(RID)), await redis.ttl(stream_key(RID) + ":user")]
    await redis.aclose()
    assert all(0 < ttl <= 7 for ttl in ttls)


@pytest.mark.parametrize("last", ["req1:²", "req1:-1", "req1:", "req2:3", "req1:3:4", "req1:9999999999"])
def test_a_last_event_id_not_from_this_stream_is_400(last: str) -> None:
    request = make_mocked_request("GET", "/", headers={"Last-Event-ID": last})
    with pytest.raises(ApiError) as refused:
        resumes_after(request, RID)
    assert (refused.value.status, refused.value.code) == (400, "invalid_last_event_id")


def test_a_resume_starts_after_the_last_event_id_read() -> None:
    assert resumes_after(make_mocked_request("GET", "/", headers={"Last-Event-ID": "req1:42"}), RID) == 42
    assert resumes_after(make_mocked_request("GET", "/"), RID) == 0
