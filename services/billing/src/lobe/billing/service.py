"""The billing process: migrations, catalog, ingest loops, responders, usage API and ops, clean
shutdown. One NATS connection: FastStream's, whose JetStream context the ingest loops and the
facts use too."""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import AsyncExitStack
from types import TracebackType

import asyncpg
from faststream.nats import NatsBroker

from lobe.billing.admin import Admin
from lobe.billing.admission import AdmissionResponder
from lobe.billing.alerts import Alerts
from lobe.billing.api import build_api
from lobe.billing.budgets import Budgets
from lobe.billing.catalog import sync_catalog
from lobe.billing.db_metrics import instrument
from lobe.billing.ingest import Ingester, sleep_unless
from lobe.billing.keys import owner_of
from lobe.billing.migrations import apply_migrations
from lobe.billing.plans import load_plans
from lobe.billing.prices import load_prices
from lobe.billing.responders import build_router
from lobe.billing.routes import RouteBook
from lobe.billing.settings import BillingSettings
from lobe.billing.user_responder import build_user_router
from lobe.billing.users import UserDirectory
from lobe.shared.bus import broker_options, ensure_streams, flush
from lobe.shared.lifecycle import announce
from lobe.shared.ops import bound_port, start_ops_server

log = logging.getLogger(__name__)
SERVICE_NAME = "billing"
EXPIRE_INTERVAL_S = 10.0


class BillingService:
    """Start with `async with BillingService(settings) as svc:`; leaving the block shuts down."""

    def __init__(self, settings: BillingSettings) -> None:
        self.settings = settings
        self.stop = asyncio.Event()
        self.ops_port = 0
        self._stack = AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []
        self.pool: asyncpg.Pool | None = None
        self.broker = NatsBroker(
            **broker_options(settings, SERVICE_NAME),
            logger=log,
            log_level=logging.DEBUG,  # a line per command belongs at debug, not in production logs
        )
        self.alerts: Alerts | None = None
        self.admission: AdmissionResponder | None = None
        self.admin: Admin | None = None

    async def __aenter__(self) -> BillingService:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    async def _start(self) -> None:
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
        self._stack.push_async_callback(pool.close)
        await sync_catalog(pool, prices, plans)

        await self.broker.connect()
        self._stack.push_async_callback(self._stop_broker)
        js = self.broker.connection.jetstream()
        await ensure_streams(js, replicas=s.nats_stream_replicas, owner=True)
        await announce(js, SERVICE_NAME, "started")
        self._stack.push_async_callback(announce, js, SERVICE_NAME, "stopped")

        self.alerts = alerts = Alerts(js)
        ingester = Ingester(
            js,
            pool,
            prices,
            plans,
            alerts,
            s.billing_batch_size,
            s.billing_fetch_timeout_s,
            s.billing_ack_wait_s,
            nc=self.broker.connection,
        )
        for i in range(s.billing_consumers):
            self._tasks.append(asyncio.create_task(ingester.run(self.stop), name=f"billing-ingest-{i}"))

        routes = RouteBook(self.broker.connection)
        await routes.refresh()  # the workers running now; later ones are heard within its TTL
        self._stack.push_async_callback(routes.close)
        budgets = Budgets(pool, prices, plans, s.billing_reservation_ttl_s, alerts, routes)
        self.admission = AdmissionResponder(self.broker.connection, budgets)
        await self.admission.start()
        self.broker.include_router(build_router(functools.partial(owner_of, pool), budgets))
        self.broker.include_router(build_user_router(UserDirectory(pool, plans).resolve))
        await self.broker.start()
        await flush(self.broker.connection)  # the responders are live before billing says it is ready
        self._tasks.append(asyncio.create_task(self._expire_loop(budgets), name="billing-expire"))

        self.admin = Admin(pool, js, plans)
        app = build_api(pool, prices, plans, s.billing_admin_token, self.admin)
        runner = await start_ops_server(s.ops_host, s.ops_port, self.ready, extra=app)
        self._stack.push_async_callback(runner.cleanup)
        self.ops_port = bound_port(runner)
        log.info("billing ready", extra={"ops_port": self.ops_port})

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
        if self.pool is None or not self.broker.running or not self.broker.connection.is_connected:
            return False
        try:
            async with asyncio.timeout(1.0):
                return bool(await self.pool.fetchval("SELECT 1"))
        except Exception:
            return False

    async def shutdown(self) -> None:
        """Stop fetching, let each loop finish (commit and ack) its batch; stop taking commands and
        finish those in hand, publish their facts; then drain NATS and close."""
        self.stop.set()
        if self._tasks:
            done = await asyncio.gather(*self._tasks, return_exceptions=True)
            for task, result in zip(self._tasks, done, strict=True):
                if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                    log.error("%s ended with %r", task.get_name(), result)
            self._tasks.clear()
        # Responders first, then the last limit facts; broker.stop() would also close the
        # connection those facts still need, so FastStream's subscribers are stopped one by one.
        if self.admission is not None:
            await self.admission.stop()
        for subscriber in self.broker.subscribers:
            await subscriber.stop()
        if self.alerts is not None:
            await self.alerts.drain()
        await self._stack.aclose()

    async def _stop_broker(self) -> None:
        try:
            await self.broker.stop()
        except Exception as exc:  # a connection already gone cannot drain; there is nothing left to flush
            log.warning("nats drain failed: %r", exc)
