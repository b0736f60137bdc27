"""The answer loop: one request's frames, from its dispatch to the client's output.

One loop for both outputs (SSE and JSON, lobe.gateway.outputs), so every rule about an answer
holds for both: the first token's timing, the usage frame priced before the last chunk, and
ending with an explicit error at shutdown. The frames come from a worker (a Dispatch) or from
the response cache (a Replay): one shape for both. It only moves frames: what the request holds
and records (the hold, the quote, the usage, the cache store) is lobe.gateway.accounting's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from lobe.gateway.cache.replay import Replay
from lobe.gateway.dispatch import AnswerFrame, Dispatch, Idle, WorkerLost
from lobe.gateway.metrics import OVERHEAD, TTFT
from lobe.gateway.outputs import Output
from lobe.gateway.route_headers import route_headers
from lobe.shared.events.chat import CancelReason, DoneFrame, UsageFrame
from lobe.shared.events.chat_wire import WireDelta
from lobe.shared.openai_errors import ApiError

Price = Callable[[UsageFrame], Awaitable[UsageFrame]]


class Answer:
    def __init__(
        self,
        dispatch: Dispatch | Replay,
        price: Price,
        started_at: float,
        live: bool,
        expose_deployment: bool,
    ) -> None:
        self.dispatch = dispatch
        self.price = price  # the usage frame with its cost (lobe.gateway.accounting)
        self.started_at = started_at  # time.monotonic() when the request arrived
        self.live = live  # a worker answers (not the cache): its route goes out in the headers
        self.expose_deployment = expose_deployment  # EXPOSE_DEPLOYMENT_NAMES (lobe.gateway.route_headers)
        self.frames: list[AnswerFrame] = []  # as they came, unpriced: what the response cache keeps
        self.usage: UsageFrame | None = None
        self.started = False  # the first delta reached the output
        self.done = False  # the answer reached the client complete
        self.lost = False  # its worker died mid-answer and will record no usage
        self.end_reason: CancelReason = "abandoned"
        self.task: asyncio.Task[object] | None = None
        self.aborted = False

    async def deliver(self, output: Output) -> web.StreamResponse:
        self.task = asyncio.current_task()
        try:
            async with contextlib.aclosing(self.dispatch.frames()) as frames:
                async for frame in frames:
                    if isinstance(frame, Idle):
                        await output.flush()
                        continue
                    self.frames.append(frame)
                    if self.live and isinstance(frame, WireDelta | DoneFrame) and frame.route:
                        output.headers.update(
                            route_headers(frame.route, self.expose_deployment)
                        )  # before the first byte
                    if isinstance(frame, WireDelta):
                        if not self.started:
                            self.started = True
                            TTFT.observe(time.monotonic() - self.started_at)
                        await output.delta(frame)
                    elif isinstance(frame, UsageFrame):
                        await output.flush()  # the last chunks must not wait for the price
                        self.usage = await self.price(frame)
                    else:
                        self.done = True
                        return await output.finish(frame, self.usage)
            raise ApiError(502, "The answer ended without completing.", "stream_truncated")
        except WorkerLost as exc:
            self.lost = True
            return await output.fail(exc)
        except ApiError as exc:
            self.end_reason = "timeout" if exc.status == 504 else "abandoned"
            return await output.fail(exc)
        except asyncio.CancelledError:
            if not self.aborted:
                self.end_reason = "client_disconnected"
                raise  # the client left
            # Shutdown past its grace: the client must read an error, not an answer that stops.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            self.end_reason = "shutdown"
            return await output.fail(
                ApiError(503, "The gateway shut down before the answer completed.", "gateway_shutdown")
            )
        finally:
            output.close()
            if self.dispatch.accepted_at is not None:
                OVERHEAD.observe(self.dispatch.accepted_at - self.started_at)

    def abort(self) -> None:
        """Shutdown: end this answer now, with an error (see deliver)."""
        self.aborted = True
        if self.task is not None:
            self.task.cancel()
