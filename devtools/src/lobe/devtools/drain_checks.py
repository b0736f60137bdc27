"""What a load balancer sees of a gateway draining on SIGTERM, for the tests that stop one as a
process or as a container: readiness goes off while the listener still answers, then the listener
refuses connections; meanwhile an answer long enough to outlive both streams on."""

from __future__ import annotations

import asyncio

import aiohttp

from lobe.chat_worker.providers.mock import mock_answer
from lobe.devtools.ports import LOOPBACK
from lobe.devtools.waiting import eventually
from lobe.shared.chat_schema import ChatCompletionRequest

# 40 words: at 0.2 s a chunk (`mock-slow` in the tests' model files) still streaming after ~8 s.
LONG_MESSAGES = [{"role": "user", "content": " ".join(f"word{i}" for i in range(40))}]


def long_answer(model: str) -> str:
    return "".join(
        mock_answer(ChatCompletionRequest.model_validate({"model": model, "messages": LONG_MESSAGES}))
    )


async def http_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as response:
        return response.status


async def refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(LOOPBACK, port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def readiness_off_then_listener_closed(port: int, delay_s: float, within_s: float = 15) -> None:
    """Call right after SIGTERM: fails when the listener closes before readiness said 503."""

    async def not_ready() -> bool:
        return await http_status(http, f"http://{LOOPBACK}:{port}/api/ready") == 503

    async with aiohttp.ClientSession() as http:
        # A refused connection here raises: the listener closed before readiness went off.
        await eventually(not_ready, within_s=delay_s, every_s=0.02)
    await eventually(lambda: refuses_connections(port), within_s=within_s)
