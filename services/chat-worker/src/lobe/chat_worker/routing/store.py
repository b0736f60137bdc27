"""The routing state every worker shares, in NATS JetStream: a KV bucket and a counter stream.

- KV bucket `LOBE_ROUTING` (file storage, one revision per key): breaker records
  (`breaker.<deployment>`, changed by compare-and-set on the revision, so exactly one worker wins
  each transition) and each worker's snapshot (`worker.<worker_id>`: its in-flight counts and
  time-to-first-token averages). Every worker watches the bucket, so routing reads a local copy
  that the server pushes changes into: deciding costs no round trip.
- Counter stream `LOBE_ROUTING_COUNTERS` (file storage, `allow_msg_counter`): one counter per
  deployment, window and metric (`$COUNTERS.LOBE_ROUTING.<deployment>.<window>.requests|tokens`),
  incremented atomically by the server, which answers with the fleet-wide total: per-window limits
  are exact in one round trip, with no compare-and-set contention between workers.

Why NATS and not Redis: every worker already holds a NATS connection and needs JetStream (usage
events); Redis would be a second stateful dependency on the request path of a service that has
none today. What the watch and the server-side counters give is what routing needs: reads that
cost nothing and writes that are atomic.

When the store does not answer (JetStream down, bucket gone, timeout) an operation returns None
at once; the caller routes on local state, and the store stays marked degraded (no further wait
per request) until a background re-open succeeds. A request is never failed because of the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType, StreamConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

BUCKET = "LOBE_ROUTING"
COUNTER_STREAM = "LOBE_ROUTING_COUNTERS"
COUNTER_PREFIX = "$COUNTERS.LOBE_ROUTING"
# What the store's traffic looks like on the bus (state, not events: no catalog entry).
SUBJECT_PREFIXES = (f"$KV.{BUCKET}.", f"{COUNTER_PREFIX}.")
BUCKET_MAX_AGE_S = 3600  # a key nobody rewrote in an hour is forgotten (dead workers' snapshots)
COUNTER_MAX_AGE_S = 2 * 3600  # longer than the longest window (Limits.window_s <= 3600)
REOPEN_EVERY_S = 1.0  # while degraded
CLOSE_WAIT_S = 2.0

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def counter_subject(counter: str) -> str:
    """A counter's subject in the counter stream: store state like a KV key, not an event, so it
    is built here and not from the event catalog (tests/e2e/test_bus_matches_catalog.py knows
    these prefixes)."""
    return f"{COUNTER_PREFIX}.{counter}"


def token(name: str) -> str:
    """A deployment or worker name as one key / subject token (a dot would split it)."""
    return _UNSAFE.sub(lambda m: f"={ord(m.group()):02X}", name)


@dataclass(frozen=True)
class Entry:
    value: bytes
    revision: int


class Conflict(Exception):
    """A compare-and-set lost: another worker changed the key first."""


Listener = Callable[[str, bytes | None], None]


class RoutingStore:
    def __init__(
        self, js: JetStreamContext, timeout_s: float, on_degraded: Callable[[bool], None], replicas: int = 1
    ) -> None:
        self.js = js
        self.replicas = replicas  # NATS_STREAM_REPLICAS, like the suite's streams
        self.timeout_s = timeout_s
        self.on_degraded = on_degraded
        self.entries: dict[str, Entry] = {}  # the bucket as last pushed by the watch
        self.listeners: list[Listener] = []
        self._kv: KeyValue | None = None
        self.counters = False  # the server supports JetStream counters (NATS 2.12+)
        self._watcher: KeyValue.KeyWatcher | None = None
        self._recovering: asyncio.Task[None] | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def available(self) -> bool:
        return self._kv is not None

    async def open(self) -> bool:
        """Bind (or create) the bucket and the counter stream, and start watching the bucket; when
        that fails, routing starts on local state and the store keeps trying in the background."""
        if await self._open():
            return True
        self._degrade("cannot open the routing store")
        return False

    async def _open(self) -> bool:
        try:
            async with asyncio.timeout(max(self.timeout_s, 2.0)):
                kv = await self._bucket()
                self.counters = await self._counter_stream()
                watcher = await kv.watchall()
        except (NatsError, TimeoutError, OSError) as exc:
            log.debug("routing store not open: %r", exc)
            return False
        await self._stop_watching()
        # A re-created bucket numbers its revisions from 1 again: forget the old copy (listeners
        # too), the watch sends every current value first.
        for key in list(self.entries):
            del self.entries[key]
            self._notify(key, None)
        self._kv, self._watcher = kv, watcher
        self.on_degraded(False)
        self._spawn(self._watch(watcher))
        log.info("routing store open (bucket %s, counters %s)", BUCKET, COUNTER_STREAM)
        return True

    async def close(self) -> None:
        self._closed = True
        await self._stop_watching()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            # Bounded: Python 3.11's wait_for (inside nats.py) can swallow a cancel that lands as
            # its reply arrives; the loops check `_closed` as well.
            await asyncio.wait(set(self._tasks), timeout=CLOSE_WAIT_S)

    async def _stop_watching(self) -> None:
        if self._watcher is not None:
            with contextlib.suppress(NatsError, TimeoutError, AttributeError):
                async with asyncio.timeout(self.timeout_s):
                    await self._watcher.stop()  # type: ignore[no-untyped-call]
            self._watcher = None

    async def _bucket(self) -> KeyValue:
        try:
            return await self.js.key_value(BUCKET)
        except BucketNotFoundError:
            config = KeyValueConfig(
                bucket=BUCKET,
                history=1,
                storage=StorageType.FILE,  # production NATS runs without a memory store
                ttl=float(BUCKET_MAX_AGE_S),
                replicas=self.replicas,
            )
            return await self.js.create_key_value(config)

    async def _counter_stream(self) -> bool:
        try:
            info = await self.js.stream_info(COUNTER_STREAM)
        except NotFoundError:
            info = await self.js.add_stream(
                StreamConfig(
                    name=COUNTER_STREAM,
                    subjects=[f"{COUNTER_PREFIX}.>"],
                    storage=StorageType.FILE,
                    allow_msg_counter=True,
                    max_msgs_per_subject=1,  # a counter's value is in its last message
                    max_age=float(COUNTER_MAX_AGE_S),
                    num_replicas=self.replicas,
                )
            )
        if not info.config.allow_msg_counter:
            log.error("NATS server without JetStream counters (2.12+ needed): limits are counted per worker")
            return False
        return True

    async def _watch(self, watcher: KeyValue.KeyWatcher) -> None:
        async for update in watcher:
            if update is None:  # the end of the initial values
                continue
            if update.operation in ("DEL", "PURGE") or update.value is None:
                self.entries.pop(update.key, None)
                self._notify(update.key, None)
            else:
                self._remember(update.key, Entry(update.value, update.revision or 0))

    def _remember(self, key: str, entry: Entry) -> None:
        known = self.entries.get(key)
        if known is None or entry.revision > known.revision:
            self.entries[key] = entry
            self._notify(key, entry.value)

    def _notify(self, key: str, value: bytes | None) -> None:
        for listener in self.listeners:
            try:
                listener(key, value)
            except Exception:  # a listener's bug must not end the watch every worker relies on
                log.exception("routing store listener failed on %s", key)

    def _degrade(self, reason: str) -> None:
        if self._closed:
            return
        if self._kv is not None or self._recovering is None:
            log.warning("routing store unavailable, routing on local state: %s", reason)
        self._kv = None
        self.on_degraded(True)
        if self._recovering is None or self._recovering.done():
            self._recovering = asyncio.create_task(self._recover())
            self._tasks.add(self._recovering)
            self._recovering.add_done_callback(self._tasks.discard)

    async def _recover(self) -> None:
        """Re-open once a second until the store is back (a re-created bucket comes back empty)."""
        while self._kv is None and not self._closed:
            await asyncio.sleep(REOPEN_EVERY_S)
            if await self._open():
                log.info("routing store available again")

    def _usable(self) -> KeyValue | None:
        return self._kv

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def compare_and_set(self, key: str, value: bytes, revision: int) -> int | None:
        """Write `value` if the key is still at `revision` (0: does not exist). The new revision;
        Conflict when another writer was first; None when the store is unavailable."""
        kv = self._usable()
        if kv is None:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                if revision:
                    new = await kv.update(key, value, last=revision)
                else:
                    new = await kv.create(key, value)
        except KeyWrongLastSequenceError:
            raise Conflict(key) from None
        except (NatsError, TimeoutError) as exc:
            self._degrade(f"write {key}: {exc!r}")
            return None
        self._remember(key, Entry(value, new))
        return new

    async def fetch(self, key: str) -> Entry | None:
        """The key's current value from the server (after a Conflict); None if absent or unavailable."""
        kv = self._usable()
        if kv is None:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                got = await kv.get(key)
        except KeyNotFoundError:
            self.entries.pop(key, None)
            return None
        except (NatsError, TimeoutError) as exc:
            self._degrade(f"read {key}: {exc!r}")
            return None
        entry = Entry(got.value or b"", got.revision or 0)
        self._remember(key, entry)
        return entry

    async def put(self, key: str, value: bytes) -> bool:
        kv = self._usable()
        if kv is None:
            return False
        try:
            async with asyncio.timeout(self.timeout_s):
                revision = await kv.put(key, value)
        except (NatsError, TimeoutError) as exc:
            self._degrade(f"write {key}: {exc!r}")
            return False
        self._remember(key, Entry(value, revision))
        return True

    async def delete(self, key: str) -> None:
        kv = self._usable()
        if kv is None:
            return
        with contextlib.suppress(NatsError, TimeoutError):
            async with asyncio.timeout(self.timeout_s):
                await kv.delete(key)

    async def increment(self, counter: str, delta: int) -> int | None:
        """Add `delta` to a fleet-wide counter; its new total, or None when unavailable."""
        if self._usable() is None or not self.counters:
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                subject = counter_subject(counter)
                ack = await self.js.publish(subject, b"", headers={"Nats-Incr": f"{delta:+d}"})
        except (NatsError, TimeoutError) as exc:
            self._degrade(f"increment {counter}: {exc!r}")
            return None
        return int(ack.val) if ack.val is not None else None
