"""NATS connection: reconnect with backoff, idempotent stream declaration, drain on shutdown."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from lobe.shared.events.streams import ALL_STREAMS, StreamSpec
from lobe.shared.settings import NatsSettings

log = logging.getLogger(__name__)

# nats.py retries forever with this pause between rounds (and its own jitter), so a restarted
# server is neither stampeded nor left waiting.
RECONNECT_WAIT_S = 0.5


def connect_options(settings: NatsSettings, name: str) -> dict[str, object]:
    """Options shared by nats.py and FastStream's NatsBroker (same keyword names)."""
    return {
        "servers": [s.strip() for s in settings.nats_url.split(",") if s.strip()],
        "name": name,
        "connect_timeout": settings.nats_connect_timeout_s,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT_S,
        # Outbound buffer while disconnected; publishes past it fail instead of piling up.
        "pending_size": 8 * 1024 * 1024,
    }


async def connect(settings: NatsSettings, name: str) -> NATS:
    async def on_disconnect() -> None:
        log.warning("nats disconnected", extra={"client": name})

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"client": name})

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc, extra={"client": name})

    options = connect_options(settings, name)
    return await nats.connect(
        **options,  # type: ignore[arg-type]
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
        allow_reconnect=True,
    )


async def flush(nc: NATS) -> None:
    """Return once the server has processed everything this connection sent so far (a SUB just
    made is live). nats.py 2.16's flush() writes its PING straight to the socket, ahead of
    commands still waiting for the client's flusher task, so its PONG can come back before the
    server saw the SUB (server trace: PING, PONG, then SUB; a request sent meanwhile from another
    connection got "no responders" in about one run in twenty). The flusher runs before the first
    PONG is read, so a second PING goes out behind those commands."""
    await nc.flush()
    await nc.flush()


def stream_config(spec: StreamSpec, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=float(spec.max_age_s),
        duplicate_window=float(spec.duplicate_window_s),
        num_replicas=replicas,
    )


async def ensure_streams(
    js: JetStreamContext, *, replicas: int, specs: tuple[StreamSpec, ...] = ALL_STREAMS
) -> None:
    """Create or update each stream; safe to call from every replica at every start.

    `replicas` is required (NATS_STREAM_REPLICAS): a caller falling back to a default of its own
    would scale the streams back down at each of its starts."""
    for spec in specs:
        config = stream_config(spec, replicas)
        try:
            await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s", spec.name)
        else:
            await js.update_stream(config)


async def close(nc: NATS) -> None:
    """Drain: finish in-flight handlers and flush publishes, then close."""
    if nc.is_closed:
        return
    try:
        await nc.drain()
    except Exception:  # a connection already gone cannot drain; closing is all that is left
        await nc.close()


async def ask(nc: NATS, subject: str, payload: bytes, timeout_s: float) -> bytes | None:
    """Request-reply where silence is an answer: None when no responder exists or none answered
    in time; the caller decides what that means (fail open, fail closed, 503)."""
    try:
        msg = await nc.request(subject, payload, timeout=timeout_s)
    except (NoRespondersError, NatsTimeoutError):
        return None
    return msg.data
