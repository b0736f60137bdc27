"""Large media through the JetStream Object Store, streamed both ways (docs/media.md): a payload
larger than a NATS message travels as the store's chunks, and no process holds it whole.

nats.py's own `ObjectStore.put` reads a synchronous file and `get` collects the object in memory
(or writes it from a thread while its push consumer runs ahead), so both directions are here,
in the store's format (chunks on `$O.<bucket>.C.<nuid>`, then the meta message with its SHA-256):
`put_stream` publishes each chunk as it comes and waits for JetStream's ack before the next (the
producer's pace is the store's); `read_stream` pulls a few chunks at a time from a consumer of
its own. Either process's memory holds a few chunks, whatever the object's size.

The bucket is the catalog's (lobe.shared.catalog.BUCKETS: who may write and read it, which the
NATS permissions follow). Each put is a `send MEDIA` span whose W3C context rides in the meta
message's headers; each read a `process MEDIA` span linked to it (lobe.shared.bus.tracing).
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
from opentelemetry.trace import Status, StatusCode

from lobe.shared.bus.tracing import reading, storing
from lobe.shared.catalog import BUCKETS, ObjectBucket
from lobe.shared.events.media import MEDIA_BUCKET

CHUNK_BYTES = 128 * 1024  # nats.py's default chunk size: readers of either kind agree on it
PULL_BATCH = 4  # chunks in hand at once while reading
PULL_WAIT_S = 5.0
MEDIA: ObjectBucket = next(b for b in BUCKETS if b.name == MEDIA_BUCKET)


class ObjectLost(Exception):
    """The object is gone or damaged mid-read (expired, deleted, a chunk missing)."""


async def media_store(js: JetStreamContext) -> ObjectStore:
    """The MEDIA bucket, created on first use; objects nobody deleted expire (its ttl_s)."""
    try:
        return await js.object_store(MEDIA.name)
    except BucketNotFoundError:
        config = ObjectStoreConfig(bucket=MEDIA.name, ttl=MEDIA.ttl_s)
        return await js.create_object_store(MEDIA.name, config=config)


def _meta_subject(name: str) -> str:
    return f"$O.{MEDIA.name}.M.{base64.urlsafe_b64encode(name.encode()).decode()}"


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
    chunks_subject = f"$O.{MEDIA.name}.C.{nuid}"
    digest = hashlib.sha256()
    size = count = 0
    with storing(MEDIA, name, {"Nats-Rollup": "sub"}) as (span, meta_headers):
        try:
            async for chunk in _rechunked(source):
                digest.update(chunk)
                await js.publish(chunks_subject, chunk)  # the ack paces the producer
                size += len(chunk)
                count += 1
            info = ObjectInfo(
                name=name,
                bucket=MEDIA.name,
                nuid=nuid,
                size=size,
                chunks=count,
                mtime=datetime.now(UTC).isoformat(),
                digest="SHA-256=" + base64.urlsafe_b64encode(digest.digest()).decode(),
                options=ObjectMetaOptions(max_chunk_size=CHUNK_BYTES),
            )
            await js.publish(_meta_subject(name), json.dumps(info.as_dict()).encode(), headers=meta_headers)
        except BaseException:
            span.set_status(Status(StatusCode.ERROR, "not stored"))
            with contextlib.suppress(Exception):
                await js.purge_stream(MEDIA.stream, subject=chunks_subject)
            raise
        span.set_attribute("lobe.object.size", size)
    return size


async def put_bytes(js: JetStreamContext, name: str, data: bytes) -> int:
    """`data` (already in memory: a provider's JSON answer) as object `name`, in the store's chunks."""

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), CHUNK_BYTES):
            yield data[start : start + CHUNK_BYTES]

    return await put_stream(js, name, pieces())


async def _info(js: JetStreamContext, name: str) -> tuple[ObjectInfo, dict[str, str] | None]:
    """The object's meta (and the headers its put sent it with), or ObjectLost."""
    await media_store(js)
    try:
        msg = await js.get_last_msg(MEDIA.stream, _meta_subject(name))
        info = ObjectInfo.from_response(json.loads(msg.data or b""))
    except Exception as exc:
        raise ObjectLost(f"no object {name!r} in {MEDIA.name}: {exc!r}") from exc
    if info.deleted:
        raise ObjectLost(f"object {name!r} in {MEDIA.name} was deleted")
    return info, msg.headers


async def read_stream(js: JetStreamContext, name: str) -> AsyncIterator[bytes]:
    """Object `name` of MEDIA, chunk by chunk, checked against its size and digest at the end."""
    info, meta_headers = await _info(js, name)
    span = reading(MEDIA, name, meta_headers)
    span.set_attribute("lobe.object.size", info.size or 0)
    config = ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    digest = hashlib.sha256()
    got = 0
    try:
        subscription = await js.pull_subscribe(
            f"$O.{MEDIA.name}.C.{info.nuid}", stream=MEDIA.stream, config=config
        )
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
    except Exception as exc:  # not GeneratorExit: a reader may stop early on purpose
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


async def delete_object(js: JetStreamContext, name: str) -> None:
    """Remove the object (its chunks are purged); one already gone is no error."""
    store = await media_store(js)
    with contextlib.suppress(Exception):
        await store.delete(name)
