"""SIGTERM at the gateway, in the order a load balancer needs (guarantee 6): readiness answers 503
first (the process runtime sets DRAINING: lobe.shared.process); SHUTDOWN_DELAY_S later, while the
balancer takes the replica out, the listener stops taking connections; answers in flight then get
SHUTDOWN_GRACE_S to finish, and past it an explicit error event; the requests' wind-downs (the work
after a client is answered) finish next; NATS drains last, with the app's other resources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from lobe.gateway.answer import Answer
from lobe.gateway.resources import SETTINGS

log = logging.getLogger("lobe.gateway")
# Readiness reads it: set, and every readiness probe answers 503 while the process still serves.
# The process runtime's `draining` event (create_app).
DRAINING = web.AppKey("draining", asyncio.Event)


class LiveAnswers(set[Answer]):
    """The answers in flight (the chat handler adds and discards each), so shutdown can end
    each with an explicit error once the grace is over."""

    def abort(self) -> None:
        for answer in list(self):
            answer.abort()


LIVE_ANSWERS = web.AppKey("live_answers", LiveAnswers)


class WindingDown(set[asyncio.Task[None]]):
    """What requests still do after their client is answered (each Accounting's wind-down: the
    response cache's store, a cache hit's usage, a worker's cancel, a hold's release), in tasks
    of their own so no client waits for it; shutdown waits for them before the resources they use
    close (`finish_wind_downs`)."""

    def run(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a request's wind-down failed", exc_info=task.exception())

    async def finished(self, within_s: float) -> None:
        """Wait for every wind-down (the bus's publishes bound each); past `within_s`, the
        resources close under what is left, as they closed under a handler past its grace."""
        if self:
            log.info("%d request wind-down(s) to finish", len(self))
            _, left = await asyncio.wait(set(self), timeout=within_s)
            if left:
                log.error("%d request wind-down(s) unfinished after %.1f s", len(left), within_s)


WINDING_DOWN = web.AppKey("winding_down", WindingDown)


async def finish_wind_downs(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context after the resources' (so closed before them): every handler has
    returned when it closes, and the wind-downs they started finish while NATS and Redis are up."""
    yield
    await app[WINDING_DOWN].finished(app[SETTINGS].shutdown_grace_s)


async def drain(app: web.Application, runner: web.AppRunner) -> None:
    """Shut the public listener down in order; returns once `runner` is cleaned up."""
    settings = app[SETTINGS]
    log.info("the listener closes in %.1f s", settings.shutdown_delay_s)
    await asyncio.sleep(settings.shutdown_delay_s)
    for site in list(runner.sites):
        await site.stop()
    answers = app[LIVE_ANSWERS]
    log.info("no new connections; %d answer(s) in flight get %.1f s", len(answers), settings.shutdown_grace_s)
    abort = asyncio.get_running_loop().call_later(settings.shutdown_grace_s, answers.abort)
    try:
        # Waits for the handlers (aiohttp's shutdown_timeout is the grace plus a margin), then
        # closes the resources: NATS drains there.
        await runner.cleanup()
    finally:
        abort.cancel()
