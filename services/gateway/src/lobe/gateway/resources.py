"""What the gateway opens and closes together (aiohttp cleanup_ctx): NATS, Redis, the auth parts
(AUTH, lobe.gateway.auth.assembly), the response cache (CACHE), resumable streams' store (RESUME),
and what the chat path shares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from lobe.gateway.auth.assembly import AUTH, open_auth
from lobe.gateway.budget import BudgetClient
from lobe.gateway.cache.response_cache import CACHE, ResponseCache
from lobe.gateway.dispatch import ChatDispatcher
from lobe.gateway.ratelimit.client_ip import parse_networks
from lobe.gateway.ratelimit.config import load_rate_limits
from lobe.gateway.ratelimit.limiter import RateLimiter
from lobe.gateway.ratelimit.per_ip import IpLimiter
from lobe.gateway.ratelimit.windows import SlidingWindows
from lobe.gateway.redis_pool import close_client, connect_pool, redis_client
from lobe.gateway.resume.store import RESUME, ResumeStore
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus, ensure_streams
from lobe.shared.catalog import GATEWAY
from lobe.shared.lifecycle import announce


@dataclass
class Resources:
    settings: GatewaySettings
    bus: Bus
    dispatcher: ChatDispatcher
    budget: BudgetClient
    rate_limits: RateLimiter


SETTINGS = web.AppKey("settings", GatewaySettings)
RESOURCES = web.AppKey("resources", Resources)


async def open_resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    limits = load_rate_limits(settings.rate_limits_file)  # a bad file stops start-up here
    state = redis_client(settings.redis_url, settings)
    # One client for the cache and the limits when they share a Redis: the cache's lookup then
    # rides on the rate limit's round trip (lobe.gateway.cache.lookup).
    cache_url = settings.cache_redis_url or settings.redis_url
    shared = cache_url.get_secret_value() == settings.redis_url.get_secret_value()
    cache_redis = state if shared else redis_client(cache_url, settings)
    windows = SlidingWindows(state)
    if settings.rate_limits_enabled:
        await connect_pool(state)
    enabled, fail_mode = settings.rate_limits_enabled, settings.rate_limit_fail_mode
    ip_limit = IpLimiter(windows, limits.per_ip, parse_networks(settings.trusted_proxies), fail_mode, enabled)
    rate_limits = RateLimiter(windows, limits, fail_mode, enabled, settings.concurrency_lease_s)
    bus = Bus(settings, "gateway", GATEWAY)
    await bus.connect()
    cache = ResponseCache(cache_redis, bus, settings)
    await cache.watch_invalidations()
    js = bus.js
    await ensure_streams(js, replicas=settings.nats_stream_replicas)
    access = await open_auth(settings, bus, ip_limit)
    await announce(js, "gateway", "started")
    dispatcher, budget = ChatDispatcher(bus, settings), BudgetClient(bus, settings)
    await budget.watch_accounts()
    app[AUTH], app[CACHE] = access, cache
    app[RESUME] = resume = ResumeStore(state, settings)
    app[RESOURCES] = Resources(settings, bus, dispatcher, budget, rate_limits)
    yield
    await budget.close()  # the budget leases' unused parts go back to billing
    await resume.close()
    await rate_limits.close()
    await cache.close()
    await announce(js, "gateway", "stopped")
    await access.close()
    await bus.stop()
    await close_client(state)
    if cache_redis is not state:
        await close_client(cache_redis)
