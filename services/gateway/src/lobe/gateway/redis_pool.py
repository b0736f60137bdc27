"""The gateway's Redis clients: a pool sized for its concurrency, where a request waits its turn.

redis-py's default pool raises MaxConnectionsError the moment every connection is busy: a burst
of 128 requests on a fresh gateway met it, the limiter took it for an outage and failed open
(issue 22). Here a request waits for a free connection, at most REDIS_POOL_WAIT_S; a wait that
runs out raises `PoolExhausted`, which is saturation, not an outage: the limiter refuses that
request (503) and leaves the fail mode to real connection failures.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opentelemetry.instrumentation.redis import RedisInstrumentor
from pydantic import SecretStr
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from lobe.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


# What a Redis that is away raises. redis-py wraps the socket's OSError, but under uvloop a Redis that
# dies between redis-py's connect and its first write surfaces as the closed transport's
# RuntimeError, unwrapped (seen in CI as a 500 mid-outage); it is the same outage.
REDIS_ERRORS = (RedisError, OSError, TimeoutError, RuntimeError)


class PoolExhausted(RedisConnectionError):
    """Every pooled connection stayed busy for REDIS_POOL_WAIT_S: Redis is reachable, the gateway
    is saturated."""


class WaitingPool(BlockingConnectionPool):
    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            # redis-py says "No connection available." for a wait that ran out, with the timeout as
            # its cause; a failure to connect comes from ensure_connection, never with that cause.
            if isinstance(exc.__cause__, asyncio.TimeoutError) and not isinstance(exc, PoolExhausted):
                raise PoolExhausted(f"no free Redis connection in {self.timeout} s") from exc
            raise


def redis_client(url: SecretStr, settings: GatewaySettings) -> Redis:
    """Fail fast, retry once: a pooled connection that a Redis restart broke is replaced at once,
    a server that does not accept connections costs one REDIS_TIMEOUT_S (then the caller's
    fallback). A reply may take longer (REDIS_REPLY_TIMEOUT_S): its wait includes the time this
    event loop is busy elsewhere, which under a burst passed 0.25 s and opened the limits. A hung
    server costs that once; its connection is then dropped and the next connect fails fast."""
    pool = WaitingPool.from_url(
        **settings.redis_from_url(url),
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_wait_s,
        socket_timeout=settings.redis_reply_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    client = Redis.from_pool(pool)
    if settings.redis_tracing:
        # A CLIENT span per command, in the request's trace (arguments elided: `EVALSHA ? ? ?`).
        # Opt-in: the instrumentation wraps every pipeline it makes and costs CPU on unsampled
        # requests too (docs/observability.md, "Traces").
        RedisInstrumentor.instrument_client(client)
    return client


async def connect_pool(client: Redis) -> None:
    """Open every pooled connection before the gateway serves: a burst on a fresh replica then finds
    them ready. Opened there, 64 connects at once under a busy event loop outlast REDIS_TIMEOUT_S,
    and a connect timeout is (rightly) an outage. Redis away: the first request will find out."""
    pool = client.connection_pool
    opened = []
    try:
        for _ in range(pool.max_connections):
            opened.append(await pool.get_connection())  # type: ignore[no-untyped-call]
    except REDIS_ERRORS as exc:
        log.warning("Redis connections not opened at start-up: %r", exc)
    finally:
        for connection in opened:
            await pool.release(connection)


async def close_client(client: Redis) -> None:
    """Close every pooled connection; one that does not close within REDIS_TIMEOUT_S (a busy host
    closing 64 at once) is left to the process's end rather than failing the shutdown."""
    try:
        await client.aclose()
    except REDIS_ERRORS as exc:
        log.warning("Redis connections not closed cleanly: %r", exc)
