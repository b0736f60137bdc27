"""What the gateway's handlers share, opened and closed together (aiohttp cleanup_ctx)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from lobe.gateway.auth import ApiKeyStore
from lobe.gateway.budget import BudgetClient
from lobe.gateway.cache.response_cache import ResponseCache
from lobe.gateway.dispatch import ChatDispatcher
from lobe.gateway.ratelimit.client_ip import parse_networks
from lobe.gateway.ratelimit.config import load_rate_limits
from lobe.gateway.ratelimit.limiter import IpLimiter, RateLimiter
from lobe.gateway.ratelimit.windows import SlidingWindows
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import close, connect, ensure_streams
from lobe.shared.lifecycle import announce


@dataclass
class Resources:
    settings: GatewaySettings
    nc: NATS
    js: JetStreamContext
    keys: ApiKeyStore
    dispatcher: ChatDispatcher
    budget: BudgetClient
    rate_limits: RateLimiter
    # Per client IP, for what comes before authentication: `await ip_limit.hit(request)` counts an
    # attempt (sign-in, a failed credential) and raises 429 past the limit; `check` only peeks.
    ip_limit: IpLimiter
    cache: ResponseCache
    # Answers in flight, so shutdown can end each with an explicit error.
    answers: set[Answer] = field(default_factory=set)

    def abort_answers(self) -> None:
        for answer in list(self.answers):
            answer.abort()


if TYPE_CHECKING:
    from lobe.gateway.answer import Answer

SETTINGS = web.AppKey("settings", GatewaySettings)
RESOURCES = web.AppKey("resources", Resources)


def redis_client(url: SecretStr, settings: GatewaySettings) -> Redis:
    """Fail fast, retry once: a pooled connection that a Redis restart broke is replaced at once,
    a server that does not answer costs one REDIS_TIMEOUT_S (then the caller's fallback)."""
    return Redis.from_url(
        url.get_secret_value(),
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


async def open_resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    limits = load_rate_limits(settings.rate_limits_file)  # a bad file stops start-up here
    state = redis_client(settings.redis_url, settings)
    cache_redis = redis_client(settings.cache_redis_url or settings.redis_url, settings)
    windows = SlidingWindows(state)
    enabled, fail_mode = settings.rate_limits_enabled, settings.rate_limit_fail_mode
    ip_limit = IpLimiter(windows, limits.per_ip, parse_networks(settings.trusted_proxies), fail_mode, enabled)
    rate_limits = RateLimiter(windows, limits, fail_mode, enabled)
    nc = await connect(settings, name="gateway")
    keys = ApiKeyStore(nc, settings, ip_limit)
    await keys.watch_revocations()
    cache = ResponseCache(cache_redis, nc, settings)
    await cache.watch_invalidations()
    js = nc.jetstream()
    await ensure_streams(js)
    await announce(js, "gateway", "started")
    dispatcher, budget = ChatDispatcher(nc, settings), BudgetClient(nc, settings)
    app[RESOURCES] = Resources(settings, nc, js, keys, dispatcher, budget, rate_limits, ip_limit, cache)
    yield
    await rate_limits.close()
    await cache.close()
    await announce(js, "gateway", "stopped")
    await close(nc)
    await state.aclose()
    await cache_redis.aclose()
