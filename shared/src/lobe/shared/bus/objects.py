"""Large media through the JetStream Object Store, streamed both ways (docs/media.md): an upload
larger than a NATS message travels as the store's chunks, and no process holds it whole.

nats.py's own `ObjectStore.put` reads a synchronous file and `get` collects the object in memory
(or writes it from a thread while its push consumer runs ahead), so both directions are here,
in the store's format (chunks on `$O.<bucket>.C.<nuid>`, then the meta message with its SHA-256):
`put_stream` publishes each chunk as it comes and waits for JetStream's ack before the next (the
producer's pace is the store's); `read_stream` pulls a few chunks at a time from a consumer of
its own. Either process's memory holds a few chunks, whatever the object's size.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    ObjectInfo,
    ObjectMetaOptions,
    ObjectStoreConfig,
)
from nats.js.errors import BucketNotFoundError
from nats.js.object_store import ObjectStore
from nats.nuid import NUID

from lobe.shared.events.media import MEDIA_BUCKET, MEDIA_OBJECT_TTL_S

CHUNK_BYTES = 128 * 1024  # nats.py's default chunk size: readers of either kind agree on it
PULL_BATCH = 4  # chunks in hand at once while reading
PULL_WAIT_S = 5.0


class ObjectLost(Exception):
    """The object is gone or damaged mid-read (expired, deleted, a chunk missing)."""


async def media_store(js: JetStreamContext) -> ObjectStore:
    """The MEDIA bucket, created on first use; objects nobody deleted expire (MEDIA_OBJECT_TTL_S)."""
    try:
        return await js.object_store(MEDIA_BUCKET)
    except BucketNotFoundError:
        config = ObjectStoreConfig(bucket=MEDIA_BUCKET, ttl=MEDIA_OBJECT_TTL_S)
        return await js.create_object_store(MEDIA_BUCKET, config=config)


async def _rechunked(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The source's bytes in chunks of CHUNK_BYTES (the last shorter)."""
    pending = bytearray()
    async for data in source:
        pending += data
        while len(pending) >= CHUNK_BYTES:
            yield bytes(pending[:CHUNK_BYTES])
            del pending[:CHUNK_BYTES]
    if pending:
        yield bytes(pending)


async def put_stream(js: JetStreamContext, name: str, source: AsyncIterator[bytes]) -> int:
    """Store `source` as object `name` of MEDIA, chunk by chunk; its size. On failure the chunks
    already stored are purged."""
    await media_store(js)
    nuid = NUID().next().decode()
    chunks_subject = f"$O.{MEDIA_BUCKET}.C.{nuid}"
    digest = hashlib.sha256()
    size = count = 0
    try:
        async for chunk in _rechunked(source):
            digest.update(chunk)
            await js.publish(chunks_subject, chunk)  # the ack paces the producer
            size += len(chunk)
            count += 1
        info = ObjectInfo(
            name=name,
            bucket=MEDIA_BUCKET,
            nuid=nuid,
            size=size,
            chunks=count,
            mtime=datetime.now(UTC).isoformat(),
            digest="SHA-256=" + base64.urlsafe_b64encode(digest.digest()).decode(),
            options=ObjectMetaOptions(max_chunk_size=CHUNK_BYTES),
        )
        meta_subject = f"$O.{MEDIA_BUCKET}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"
        await js.publish(meta_subject, json.dumps(info.as_dict()).encode(), headers={"Nats-Rollup": "sub"})
    except BaseException:
        with contextlib.suppress(Exception):
            await js.purge_stream(f"OBJ_{MEDIA_BUCKET}", subject=chunks_subject)
        raise
    return size


async def read_stream(js: JetStreamContext, name: str) -> AsyncIterator[bytes]:
    """Object `name` of MEDIA, chunk by chunk, checked against its size and digest at the end."""
    store = await media_store(js)
    try:
        info = await store.get_info(name)
    except Exception as exc:
        raise ObjectLost(f"no object {name!r} in {MEDIA_BUCKET}: {exc!r}") from exc
    config = ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    subscription = await js.pull_subscribe(
        f"$O.{MEDIA_BUCKET}.C.{info.nuid}", stream=f"OBJ_{MEDIA_BUCKET}", config=config
    )
    digest = hashlib.sha256()
    got = 0
    try:
        while got < (info.size or 0):
            try:
                messages = await subscription.fetch(PULL_BATCH, timeout=PULL_WAIT_S)
            except NatsTimeoutError as exc:
                raise ObjectLost(f"{name!r}: no chunk after {got} of {info.size} bytes") from exc
            for msg in messages:
                await msg.ack()
                digest.update(msg.data)
                got += len(msg.data)
                yield msg.data
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    expected = (info.digest or "").removeprefix("SHA-256=")
    if got != info.size or base64.urlsafe_b64encode(digest.digest()).decode() != expected:
        raise ObjectLost(f"{name!r}: {got} bytes read of {info.size}, or its digest differs")


async def delete_object(js: JetStreamContext, name: str) -> None:
    """Remove the object (its chunks are purged); one already gone is no error."""
    store = await media_store(js)
    with contextlib.suppress(Exception):
        await store.delete(name)
