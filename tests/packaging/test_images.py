"""The service images, built with podman on the local Debian base (make images) and run as in
production against the harness's NATS, PostgreSQL and Redis: non-root, read-only root, no
capabilities; each HEALTHCHECK passes, one answer streams through the four containers, and a
gateway container SIGTERMed mid-answer drains. podman, runc and debootstrap come from
tools/system-deps.txt: where they are missing these tests fail naming the package."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from lobe.devtools.drain_checks import LONG_MESSAGES, long_answer, readiness_off_then_listener_closed
from lobe.devtools.images.base import ensure_base
from lobe.devtools.images.containers import Container
from lobe.devtools.images.services import SERVICES, build_service
from lobe.devtools.ports import LOOPBACK, free_port
from lobe.devtools.waiting import eventually

# A cold machine builds the base and four images first (minutes); a warm one finds them cached.
pytestmark = pytest.mark.timeout(1800)

API_KEY = "sk-image-alice"
MODELS_FILE = "/etc/lobe/models.yaml"
MODELS_YAML = """
models:
  - name: mock
    deployments: [{name: mock, provider: mock}]
  - name: mock-slow
    deployments: [{name: mock-slow, provider: mock, chunk_delay_s: 0.2}]
"""
StartContainer = Callable[..., Container]
ROOT_MOUNT_OPTIONS = "print(next(line.split()[3] for line in open('/proc/mounts') if line.split()[1] == '/'))"


@pytest.fixture(scope="module")
def images() -> dict[str, str]:
    base = ensure_base()
    return {service: build_service(service, base) for service in SERVICES}


@pytest.fixture
def start_container(images: dict[str, str]) -> Iterator[StartContainer]:
    started: list[Container] = []

    def start(service: str, env: Mapping[str, str], mounts: Sequence[tuple[str, str]] = ()) -> Container:
        started.append(Container.start(images[service], env, mounts))
        return started[-1]

    yield start
    for container in started:
        print(f"--- {container.image} logs\n{container.logs()[-4000:]}")  # shown when the test failed
        container.remove()


@pytest.fixture
def models_file(tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "models.yaml"
    path.write_text(MODELS_YAML)
    path.chmod(0o644)  # read by the image's own user, uid 10001
    return str(path), MODELS_FILE


async def ready(container: Container, url: str, within_s: float = 60) -> None:
    async def answers_200() -> bool:
        assert container.running(), f"{container.image} exited"
        try:
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(answers_200, within_s=within_s, every_s=0.2)


async def sse_data(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    async for line in response.content:
        if line.startswith(b"data: "):
            yield line[6:].strip().decode()


def delta_text(data: str) -> str:
    choices = json.loads(data).get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


def service_env(nats_url: str, port: int) -> dict[str, str]:
    # Host networking: the harness's servers are on loopback, and nothing binds beyond it.
    return {"NATS_URL": nats_url, "OPS_HOST": LOOPBACK, "OPS_PORT": str(port), "LOG_LEVEL": "INFO"}


def gateway_env(nats_url: str, redis_url: str, port: int, ops_port: int) -> dict[str, str]:
    return service_env(nats_url, ops_port) | {
        "GATEWAY_HOST": LOOPBACK,
        "GATEWAY_PORT": str(port),
        "REDIS_URL": redis_url,
        "GATEWAY_API_KEYS": f"{API_KEY}:alice:basic",
    }


async def test_each_image_runs_as_in_production_and_streams_an_answer_through_the_four(
    start_container: StartContainer, nats_url: str, database_url: str, redis_url: str
) -> None:
    ops = {service: free_port() for service in SERVICES}
    port = free_port()
    containers = {
        "chat-worker": start_container("chat-worker", service_env(nats_url, ops["chat-worker"])),
        "billing": start_container(
            "billing", service_env(nats_url, ops["billing"]) | {"DATABASE_URL": database_url}
        ),
        "metrics": start_container("metrics", service_env(nats_url, ops["metrics"])),
        "gateway": start_container("gateway", gateway_env(nats_url, redis_url, port, ops["gateway"])),
    }
    for service, container in containers.items():
        await ready(container, f"http://{LOOPBACK}:{ops[service]}/health/ready")
        health = container.run_healthcheck()
        assert health.returncode == 0, f"{service} HEALTHCHECK: {health.stdout}{health.stderr}"
        who = container.exec("python", "-c", "import os; print(os.getuid(), os.getgid())")
        assert who.stdout.split() == ["10001", "10001"], who.stderr
        root = container.exec("python", "-c", ROOT_MOUNT_OPTIONS)
        assert root.stdout.split(",")[0] == "ro", f"{service}: root filesystem {root.stdout}{root.stderr}"
        caps = container.exec("python", "-c", "print(open('/proc/self/status').read())")
        assert re.search(r"^CapEff:\s+0+$", caps.stdout, re.M), f"{service} holds capabilities"

    payload = {"model": "mock", "messages": [{"role": "user", "content": "hello from a container"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"http://{LOOPBACK}:{port}/v1/chat/completions",
            json=payload | {"stream": True},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response:
            assert response.status == 200, await response.text()
            request_id = response.headers["X-Request-Id"]
            data = [item async for item in sse_data(response)]
        assert data[-1] == "[DONE]"
        assert "".join(delta_text(item) for item in data[:-1]).startswith(
            "Mock reply to: hello from a container"
        )

        async def billed() -> bool:
            conn = await asyncpg.connect(database_url)
            try:
                return bool(
                    await conn.fetchval(
                        "SELECT count(*) FROM usage_request_ids WHERE request_id = $1", request_id
                    )
                )
            finally:
                await conn.close()

        await eventually(billed, within_s=30, every_s=0.2)

        async def counted() -> bool:
            async with http.get(f"http://{LOOPBACK}:{ops['metrics']}/metrics") as scrape:
                text = await scrape.text()
            return bool(
                re.search(r'^lobe_chat_requests_total\{[^}]*status="success"[^}]*\} 1\.0$', text, re.M)
            )

        await eventually(counted, within_s=30, every_s=0.2)

        # Day 2 in a pod (docs/deploy.md): the billing image's `lobe-admin` issues the first key,
        # with nothing but the container's own environment, and the gateway admits it.
        billing = containers["billing"]
        created = billing.exec("lobe-admin", "create-user", "root", "--email", "root@lobe.test")
        assert created.returncode == 0, created.stderr
        issued = billing.exec("lobe-admin", "issue-key", "root", "--name", "first")
        assert issued.returncode == 0, issued.stderr
        key = re.search(r"^api key (\S+)", issued.stdout, re.M)
        assert key is not None, issued.stdout
        async with http.post(
            f"http://{LOOPBACK}:{port}/v1/chat/completions",
            json=payload,
            headers={"Authorization": f"Bearer {key.group(1)}"},
        ) as response:
            assert response.status == 200, await response.text()


async def test_a_gateway_container_sigtermed_mid_answer_drains_and_exits_0(
    start_container: StartContainer, nats_url: str, redis_url: str, models_file: tuple[str, str]
) -> None:
    worker_ops, gateway_ops, port = free_port(), free_port(), free_port()
    worker_env = service_env(nats_url, worker_ops) | {"MODELS_FILE": MODELS_FILE}
    worker = start_container("chat-worker", worker_env, [models_file])
    delay_s, grace_s = 1.5, 20.0
    env = gateway_env(nats_url, redis_url, port, gateway_ops) | {
        "BILLING_ENABLED": "false",  # not what this test is about
        "SHUTDOWN_DELAY_S": str(delay_s),
        "SHUTDOWN_GRACE_S": str(grace_s),
    }
    gateway = start_container("gateway", env)
    await ready(worker, f"http://{LOOPBACK}:{worker_ops}/health/ready")
    await ready(gateway, f"http://{LOOPBACK}:{port}/api/ready")

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"http://{LOOPBACK}:{port}/v1/chat/completions",
            json={"model": "mock-slow", "messages": LONG_MESSAGES, "stream": True},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as response,
    ):
        assert response.status == 200
        stream = aiter(sse_data(response))
        data = [await anext(stream)]
        await asyncio.to_thread(gateway.signal, "TERM")
        await readiness_off_then_listener_closed(port, delay_s)
        data += [item async for item in stream]
    assert data[-1] == "[DONE]"
    assert "".join(delta_text(item) for item in data[:-1]) == long_answer("mock-slow")
    assert await asyncio.to_thread(gateway.wait, grace_s) == 0
