"""The Object Store, streamed both ways on a real nats-server (lobe.shared.bus.objects): an object
of many chunks comes back byte for byte; a missing, deleted or damaged one is ObjectLost, never a
short read that looks whole."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext

from lobe.shared.bus.objects import (
    CHUNK_BYTES,
    MEDIA,
    ObjectLost,
    delete_object,
    put_bytes,
    put_stream,
    read_stream,
)


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


async def read_all(js: JetStreamContext, name: str) -> bytes:
    return b"".join([chunk async for chunk in read_stream(js, name)])


async def test_an_object_of_uneven_pieces_comes_back_whole_in_the_stores_chunks(js: JetStreamContext) -> None:
    data = hashlib.sha256(b"seed").digest() * (3 * CHUNK_BYTES // 32 + 7)

    async def uneven() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 50_001):
            yield data[start : start + 50_001]

    assert await put_stream(js, "uneven", uneven()) == len(data)
    chunks = [chunk async for chunk in read_stream(js, "uneven")]
    assert b"".join(chunks) == data
    assert [len(c) for c in chunks[:-1]] == [CHUNK_BYTES] * (len(chunks) - 1)


async def test_a_missing_or_deleted_object_is_lost(js: JetStreamContext) -> None:
    with pytest.raises(ObjectLost):
        await read_all(js, "never-stored")
    await put_bytes(js, "gone", b"x" * 10)
    await delete_object(js, "gone")
    with pytest.raises(ObjectLost):
        await read_all(js, "gone")
    await delete_object(js, "gone")  # twice is no error


async def test_an_object_whose_chunks_were_purged_is_lost_not_short(js: JetStreamContext) -> None:
    await put_bytes(js, "purged", b"y" * (CHUNK_BYTES + 1))
    await js.purge_stream(MEDIA.stream, subject=f"$O.{MEDIA.name}.C.>")
    with pytest.raises(ObjectLost):
        await read_all(js, "purged")
