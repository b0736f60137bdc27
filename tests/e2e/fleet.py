"""Chat workers as real processes sharing one routing file: what the routing acceptance tests need
to show that N workers behave as one (their state is in NATS, not in a process).

Each worker logs to a file of its own (to read a refused reload's message) and serves its ops
port (to read its /metrics). The gateway runs in the test's loop, as in the other e2e tests.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from lobe.devtools.suite import ServiceProcess, start_worker

from .conftest import API_KEY, start_gateway

CHAT = {"messages": [{"role": "user", "content": "Route me."}]}


@dataclass
class WorkerProcess:
    process: ServiceProcess
    log: Path

    @property
    def proc(self) -> asyncio.subprocess.Process:
        return self.process.proc

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http, http.get(f"{self.process.ops_url}/metrics") as response:
            return await response.text()

    def hang_up(self) -> None:
        self.proc.send_signal(signal.SIGHUP)


@dataclass
class Gateway:
    """Requests through a gateway, read the way the routing tests need them."""

    http: aiohttp.ClientSession
    base_url: str

    async def chat(self, model: str, stream: bool = False, **body: Any) -> tuple[int, dict[str, str], str]:
        """One request through the gateway: status, headers, body text."""
        payload = {**CHAT, **body, "model": model, "stream": stream}
        async with self.http.post(
            f"{self.base_url}/v1/chat/completions",
            json=payload,
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response:
            return response.status, dict(response.headers), await response.text()

    async def deployments(self, model: str, count: int, concurrency: int = 16, **body: Any) -> Counter[str]:
        """Send `count` requests, `concurrency` at a time; which deployment answered each."""
        answered: Counter[str] = Counter()
        slots = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with slots:
                status, headers, text = await self.chat(model, **body)
            assert status == 200, text
            answered[headers["X-Lobe-Deployment"]] += 1

        await asyncio.gather(*(one() for _ in range(count)))
        return answered


@dataclass
class Fleet(Gateway):
    workers: list[WorkerProcess]


async def start_workers(
    nats_url: str, models: Path, logs: Path, count: int, **env: str
) -> list[WorkerProcess]:
    async def start(index: int) -> WorkerProcess:
        log = logs / f"worker-{index}.log"
        process = await start_worker(
            nats_url,
            mode="process",
            name=f"w{index}",
            log=log,
            models_file=models,
            worker_id=f"w{index}",
            heartbeat_interval_s=0.2,
            env={"OPENAI_API_KEY": "test-key-openai", "ANTHROPIC_API_KEY": "test-key-anthropic", **env},
        )
        return WorkerProcess(process, log)

    return list(await asyncio.gather(*(start(i) for i in range(count))))


@asynccontextmanager
async def fleet(nats_url: str, models: Path, logs: Path, count: int = 3, **env: str) -> AsyncIterator[Fleet]:
    """`count` worker processes routing by `models`, and a gateway in front of them."""
    workers = await start_workers(nats_url, models, logs, count, **env)
    # The fleet's tests are about routing across worker processes, none about a worker's loss: the
    # gateway gives them the production default's patience (WORKER_SILENCE_S), not the in-process
    # tests' 1 s, which two stalls of a worker process on a loaded machine exceeded.
    runner, base_url = await start_gateway(nats_url, worker_silence_s=5.0)
    try:
        async with aiohttp.ClientSession() as http:
            yield Fleet(http, base_url, workers)
    finally:
        await runner.cleanup()
        for worker in workers:
            await worker.process.stop(15)


def models_file(directory: Path, text: str) -> Path:
    """The routing file the workers are started with (and a test rewrites to reload)."""
    path = directory / "models.yaml"
    path.write_text(text)
    return path


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text exposition (`name{a="1",b="2"} value`)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        head, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if head == name and got == wanted:
            return float(value)
    return None
