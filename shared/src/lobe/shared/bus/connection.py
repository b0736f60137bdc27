"""NATS connection: reconnect with backoff, idempotent stream declaration, drain on shutdown."""

from __future__ import annotations

import logging
import ssl
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from lobe.shared.events.streams import ALL_STREAMS, StreamSpec
from lobe.shared.settings import NatsSettings
from lobe.shared.telemetry import inject_headers

log = logging.getLogger(__name__)

# nats.py retries forever with this pause between rounds (and its own jitter), so a restarted
# server is neither stampeded nor left waiting.
RECONNECT_WAIT_S = 0.5


def connect_options(settings: NatsSettings, name: str) -> dict[str, Any]:
    """nats.py's `connect` keywords: servers, reconnects, credentials, TLS, inbox prefix.

    `name` names the connection (monitoring shows it) and starts with the service's name. Replies
    arrive under `_INBOX.<user>`, the NATS user's own inbox (else the service's name): that user may
    subscribe to replies there and nowhere else, so no other service can read the answers it is
    sent, and a one-off task under a service's user (`lobe-admin` in a billing pod) gets its acks.
    """
    options: dict[str, Any] = {
        "servers": settings.nats_servers,
        "name": name,
        "connect_timeout": settings.nats_connect_timeout_s,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT_S,
        # Outbound buffer while disconnected; publishes past it fail instead of piling up.
        "pending_size": 8 * 1024 * 1024,
        "inbox_prefix": inbox_prefix(settings.nats_user or name.split(" ")[0]),
    }
    if settings.nats_user:
        options["user"] = settings.nats_user
        if settings.nats_password is not None:
            options["password"] = settings.nats_password.get_secret_value()
    if settings.nats_creds is not None:
        options["user_credentials"] = str(settings.nats_creds)
    if settings.nats_tls:
        options["tls"] = tls_context(settings)
    return options


def inbox_prefix(service: str) -> str:
    """Where a service's replies arrive (request-reply answers, JetStream acks and fetches)."""
    return f"_INBOX.{service}"


def tls_context(settings: NatsSettings) -> ssl.SSLContext:
    """Verifies the servers against NATS_TLS_CA_FILE (else the system's CAs); presents the client
    certificate when one is configured."""
    ca = settings.nats_tls_ca_file
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    if settings.nats_tls_cert_file is not None and settings.nats_tls_key_file is not None:
        context.load_cert_chain(str(settings.nats_tls_cert_file), str(settings.nats_tls_key_file))
    return context


async def connect(settings: NatsSettings, name: str) -> NATS:
    async def on_disconnect() -> None:
        log.warning("nats disconnected", extra={"client": name})

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"client": name})

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc, extra={"client": name})

    options = connect_options(settings, name)
    return await nats.connect(
        **options,
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
    js: JetStreamContext,
    *,
    replicas: int,
    specs: tuple[StreamSpec, ...] = ALL_STREAMS,
    owner: bool = False,
) -> None:
    """Create each stream that is missing; safe to call from every replica at every start.

    `replicas` is required (NATS_STREAM_REPLICAS): a caller falling back to a default of its own
    would scale the streams back down at each of its starts. Only the streams' `owner` (billing,
    and the operator's `lobe admin`) brings an existing stream to the catalog's configuration;
    the others' NATS users may not (a compromised gateway must not shorten the ledger's stream),
    so they only warn when it differs."""
    for spec in specs:
        config = stream_config(spec, replicas)
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s", spec.name)
            continue
        if _differs(config, info.config):
            if owner:
                await js.update_stream(config)
                log.info("updated stream %s to the catalog's configuration", spec.name)
            else:
                log.warning(
                    "stream %s differs from the catalog's configuration; billing updates it", spec.name
                )


# What the catalog sets; the server fills in the rest with its defaults.
_DECLARED = ("retention", "storage", "discard", "max_age", "duplicate_window", "num_replicas")


def _differs(wanted: StreamConfig, actual: StreamConfig) -> bool:
    if sorted(wanted.subjects or ()) != sorted(actual.subjects or ()):
        return True
    return any(getattr(wanted, name) != getattr(actual, name) for name in _DECLARED)


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create a durable consumer, or bring an existing one to `config` (a subject added to its
    filters reaches deployments whose consumer predates it; binding alone keeps the old config)."""
    await js.add_consumer(stream, config)


async def close(nc: NATS) -> None:
    """Drain: finish in-flight handlers and flush publishes, then close."""
    if nc.is_closed:
        return
    try:
        await nc.drain()
    except Exception:  # a connection already gone cannot drain; closing is all that is left
        await nc.close()


async def ask(
    nc: NATS, subject: str, payload: bytes, timeout_s: float, headers: dict[str, str] | None = None
) -> bytes | None:
    """Request-reply where silence is an answer: None when no responder exists or none answered
    in time; the caller decides what that means (fail open, fail closed, 503). Without `headers`
    (a caller outside `Bus.request`), the current trace context goes along all the same."""
    try:
        msg = await nc.request(
            subject, payload, timeout=timeout_s, headers=headers or inject_headers() or None
        )
    except (NoRespondersError, NatsTimeoutError):
        return None
    return msg.data
