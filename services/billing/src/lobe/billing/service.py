"""The billing process: migrations, catalog, ingest loops, responders, usage API and ops, clean
shutdown. One NATS connection, the bus's (lobe.shared.bus): responders, ingest loops and facts."""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import AsyncExitStack
from types import TracebackType

import asyncpg

from lobe.billing.admin import Admin
from lobe.billing.alerts import Alerts
from lobe.billing.api import build_api
from lobe.billing.budgets import Budgets
from lobe.billing.catalog import sync_catalog
from lobe.billing.db_metrics import instrument
from lobe.billing.ingest import Ingester, consumer_settings
from lobe.billing.keys import owner_of
from lobe.billing.leases import Leases
from lobe.billing.migrations import apply_migrations
from lobe.billing.own_keys import OwnKeys
from lobe.billing.plans import load_plans
from lobe.billing.prices import load_prices
from lobe.billing.responders import respond
from lobe.billing.routes import RouteBook
from lobe.billing.settings import BillingSettings
from lobe.billing.users import UserDirectory
from lobe.shared.bus import Bus, Consuming, ensure_streams, sleep_unless
from lobe.shared.events.streams import BILLING_CONSUMER, USAGE
from lobe.shared.process import ServiceRuntime, started

log = logging.getLogger(__name__)
SERVICE_NAME = "billing"
EXPIRE_INTERVAL_S = 10.0


class BillingService:
    """`open` is its start-up on the shared runtime (lobe.shared.process); in process (tests,
    benches) `async with BillingService(settings) as svc:` runs it the same way until the block
    exits."""

    def __init__(self, settings: BillingSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()  # the ingest and expiry loops' signal to finish their round
        self._expiring: asyncio.Task[None] | None = None
        self.pool: asyncpg.Pool | None = None
        self.bus = Bus(settings, SERVICE_NAME, SERVICE_NAME)
        self.alerts: Alerts | None = None
        self.admin: Admin | None = None
        self._runtime: ServiceRuntime | None = None
        self._in_process = AsyncExitStack()

    @property
    def ops_port(self) -> int:
        return self._runtime.ops_port if self._runtime is not None else 0

    async def __aenter__(self) -> BillingService:
        await self._in_process.enter_async_context(started(SERVICE_NAME, self.open))
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._in_process.aclose()

    async def open(self, runtime: ServiceRuntime) -> None:
        """Migrate, connect, serve. On the way out, in reverse: the API stops; each ingest loop
        finishes (commits and acks) its batch; the responders stop and finish the commands in hand;
        their last facts are published; NATS drains; the pool closes."""
        self._runtime = runtime
        s = self.settings
        # Bad YAML fails here, before anything connects: a clear error and a non-zero exit.
        prices = load_prices(s.prices_file)
        plans = load_plans(s.plans_file)
        dsn = s.database_url.get_secret_value()
        applied = await apply_migrations(dsn)
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        pool = await asyncpg.create_pool(
            dsn, min_size=2, max_size=s.billing_db_pool_size, timeout=5, command_timeout=30, init=instrument
        )
        self.pool = pool
        runtime.on_stop(pool.close)
        await sync_catalog(pool, prices, plans)

        await runtime.connect(self.bus)
        js = self.bus.js
        await ensure_streams(js, replicas=s.nats_stream_replicas, owner=True)
        runtime.announce(js)
        self.alerts = alerts = Alerts(js)
        runtime.on_stop(alerts.drain)

        routes = RouteBook(self.bus)
        await routes.refresh()  # the workers running now; later ones are heard within its TTL
        runtime.on_stop(routes.close)
        budgets = Budgets(pool, prices, plans, s.billing_reservation_ttl_s, alerts, routes)
        # Live at the server before billing says it is ready. The last limit facts still need the
        # connection when they stop: the runtime drains it afterwards.
        await respond(
            self.bus,
            functools.partial(owner_of, pool),
            budgets,
            UserDirectory(pool, plans).resolve,
            OwnKeys(pool, js, plans),
            Leases(
                budgets, s.billing_lease_term_s, s.billing_lease_max_requests, s.billing_lease_min_requests
            ).ask,
        )
        runtime.on_stop(self.bus.stop_handlers)

        ingester = Ingester(js, pool, prices, plans, alerts)
        ingesting = await self.bus.consume(
            USAGE,
            BILLING_CONSUMER,
            s.billing_batch_size,
            ingester.handle,
            wait_s=s.billing_fetch_timeout_s,
            loops=s.billing_consumers,
            **consumer_settings(s.billing_ack_wait_s),
        )
        self._expiring = asyncio.create_task(self._expire_loop(budgets), name="billing-expire")
        runtime.on_stop(self._finish_loops, ingesting)

        self.admin = Admin(pool, js, plans)
        app = build_api(pool, prices, plans, s.billing_admin_token, self.admin)
        await runtime.serve_ops(s, self.ready, extra=app)

    async def _expire_loop(self, budgets: Budgets) -> None:
        while not self.stop.is_set():
            try:
                freed = await budgets.expire()
                if freed:
                    log.warning("freed %d expired budget holds", freed)
            except Exception as exc:  # the database is down: try again next round
                log.debug("reservation expiry failed: %s", exc)
            await sleep_unless(self.stop, EXPIRE_INTERVAL_S)

    async def ready(self) -> bool:
        if self.pool is None or not self.bus.connected:
            return False
        try:
            async with asyncio.timeout(1.0):
                return bool(await self.pool.fetchval("SELECT 1"))
        except Exception:
            return False

    async def _finish_loops(self, ingesting: Consuming) -> None:
        """Stop fetching; each loop finishes (commits and acks) the batch in hand."""
        self.stop.set()
        await ingesting.stop()
        if self._expiring is not None:
            await self._expiring
