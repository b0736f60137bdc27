"""The services in the test's own event loop: milliseconds to start, objects a test can read."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiohttp import web

from lobe.devtools.ports import LOOPBACK, free_port
from lobe.gateway.app import create_app, start_ops
from lobe.gateway.settings import GatewaySettings
from lobe.shared.ops import bound_port

T = TypeVar("T")


@dataclass
class InProcessService(Generic[T]):
    """A service running in the test's loop (its own in-process context manager, entered)."""

    service: T
    url: str  # its ops listener (health, /metrics, and billing's API)
    stack: AsyncExitStack

    async def stop(self) -> None:
        await self.stack.aclose()


async def entered(
    context: AbstractAsyncContextManager[T], ops_port: Callable[[T], int]
) -> InProcessService[T]:
    stack = AsyncExitStack()
    service = await stack.enter_async_context(context)
    return InProcessService(service, f"http://{LOOPBACK}:{ops_port(service)}", stack)


@dataclass
class InProcessGateway:
    runner: web.AppRunner
    url: str
    ops: web.AppRunner | None = None  # the ops listener (health, /metrics), when asked for

    @property
    def ops_url(self) -> str:
        assert self.ops is not None, "started without ops=True"
        return f"http://{LOOPBACK}:{bound_port(self.ops)}"

    async def stop(self) -> None:
        await self.runner.cleanup()
        if self.ops is not None:
            await self.ops.cleanup()


async def gateway_in_process(
    settings: GatewaySettings, port: int | None = None, ops: bool = False
) -> InProcessGateway:
    # handler_cancellation as in production: a client that leaves cancels its handler at once.
    runner = web.AppRunner(create_app(settings), handler_cancellation=True)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    ops_runner = await start_ops(runner.app) if ops else None
    return InProcessGateway(runner, f"http://{LOOPBACK}:{port}", ops_runner)
