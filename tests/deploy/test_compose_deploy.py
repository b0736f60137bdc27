"""docker-compose.yml for a real machine: schema-valid, restarting, TLS in front, Redis roles apart.

No Docker engine here: the compose file is checked against the Compose specification, and what
its containers would run (nginx with our config, redis-server with our flags) runs for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import yaml
from aiohttp import web

from lobe.devtools.ports import free_port, port_is_open
from lobe.devtools.servers import RedisServer
from lobe.devtools.servers.binaries import debian_binary

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ONE_SHOT = {"billing-migrate"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def test_compose_file_validates_against_the_compose_specification() -> None:
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", ROOT / "docker-compose.yml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_long_running_service_restarts_unless_stopped(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart") == expected, name


def test_the_gateway_keeps_state_and_cache_in_separate_redis_instances(
    services: dict[str, dict[str, Any]],
) -> None:
    env = services["gateway"]["environment"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["CACHE_REDIS_URL"].startswith("redis://redis-cache:")
    assert "redis-data:/data" in services["redis"]["volumes"]


class ComposeRedis(RedisServer):
    """redis-server with the flags docker-compose.yml gives one of its Redis services."""

    def __init__(self, flags: list[str], maxmemory: str) -> None:
        super().__init__()
        self.flags = flags
        self.maxmemory = maxmemory

    def command(self) -> list[str]:
        # Later flags win: compose's over the harness's defaults, a small cap over compose's.
        return [*super().command(), *self.flags, "--maxmemory", self.maxmemory]


@contextlib.contextmanager
def compose_redis(service: dict[str, Any]) -> Iterator[tuple[ComposeRedis, redis.Redis]]:
    command = service["command"]
    assert command[0] == "redis-server"
    with ComposeRedis(command[1:], maxmemory="2mb") as server:
        client = redis.Redis(host=server.host, port=server.port)
        try:
            yield server, client
        finally:
            client.close()


def fill(client: redis.Redis, keys: int, prefix: str) -> int:
    """Write up to `keys` 10 kB values; returns how many writes Redis accepted."""
    for i in range(keys):
        try:
            client.set(f"{prefix}:{i}", b"x" * 10_000)
        except redis.exceptions.OutOfMemoryError:
            return i
    return keys


def test_state_redis_refuses_writes_when_full_rather_than_evict_a_counter(
    services: dict[str, dict[str, Any]],
) -> None:
    with compose_redis(services["redis"]) as (server, client):
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.incr("ratelimit:user-1:minute")
        accepted = fill(client, 1000, "state")
        assert accepted < 1000, "past the cap, writes must fail"
        assert int(client.get("ratelimit:user-1:minute") or 0) == 1  # nothing was evicted
        assert client.dbsize() == accepted + 1
        assert client.info("stats")["evicted_keys"] == 0
        client.execute_command("BGREWRITEAOF")
        assert any(server.home.glob("appendonly*")), "AOF persistence is on"


def test_cache_redis_evicts_least_recently_used_entries_and_persists_nothing(
    services: dict[str, dict[str, Any]],
) -> None:
    with compose_redis(services["redis-cache"]) as (_, client):
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
        assert fill(client, 1000, "cache") == 1000, "a cache never refuses a write"
        assert client.info("stats")["evicted_keys"] > 0
        assert client.dbsize() < 1000
    assert "512mb" in services["redis-cache"]["command"]


def test_postgres_backup_runs_the_charts_script_into_the_backup_directory(
    services: dict[str, dict[str, Any]],
) -> None:
    backup = services["postgres-backup"]
    assert (
        backup["image"].split(":")[1].split("-")[0]
        == services["postgres"]["image"].split(":")[1].split("-")[0]
    )
    assert backup["command"][:3] == ["/bin/sh", "/opt/lobe/pg-backup.sh", "every"]
    assert "./helm/billing/files/pg-backup.sh:/opt/lobe/pg-backup.sh:ro" in backup["volumes"]
    assert "./backup:/backup" in backup["volumes"]
    assert backup["environment"]["DATABASE_URL"] == services["billing"]["environment"]["DATABASE_URL"]


# -- TLS ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    made = subprocess.run(
        ["make", "-s", "tls", f"TLS_DIR={out}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return out


def test_make_tls_writes_a_ca_and_a_server_certificate_valid_for_localhost(tls_dir: Path) -> None:
    assert {p.name for p in tls_dir.iterdir()} == {"ca.crt", "ca.key", "server.crt", "server.key"}
    assert (tls_dir / "server.key").stat().st_mode & 0o077 == 0
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", tls_dir / "ca.crt", tls_dir / "server.crt"],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stderr
    sans = subprocess.run(
        ["openssl", "x509", "-in", tls_dir / "server.crt", "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
    ).stdout
    assert "DNS:localhost" in sans
    assert "IP Address:127.0.0.1" in sans
    kept = subprocess.run(
        ["make", "-s", "tls", f"TLS_DIR={tls_dir}"], cwd=ROOT, capture_output=True, text=True
    )
    assert "keeping the certificate" in kept.stdout


class FakeGateway:
    """Streams one SSE event, then holds the stream until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await self.release.wait()
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def nginx(tls_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[int, int, FakeGateway]]:
    gateway = FakeGateway()
    app = web.Application()
    app.router.add_get("/v1/stream", gateway.stream)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    gateway_port, http_port, https_port = free_port(), free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", gateway_port).start()
    conf = (ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    for old, new in (
        ("server gateway:3210;", f"server 127.0.0.1:{gateway_port};"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
    ):
        assert conf.count(old) == 1, f"nginx.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    (tmp_path / "nginx.conf").write_text(conf.replace("/tmp/", f"{tmp_path}/"))
    shutil.copytree(tls_dir, tmp_path / "tls")
    proc = await asyncio.create_subprocess_exec(
        debian_binary("nginx", "nginx"),
        *("-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")),
        *("-g", "daemon off;"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(200):
            if proc.returncode is not None:
                raise AssertionError(
                    f"nginx exited: {(await proc.stderr.read()).decode() if proc.stderr else ''}"
                )
            if port_is_open(https_port) and port_is_open(http_port):
                break
            await asyncio.sleep(0.05)
        yield http_port, https_port, gateway
    finally:
        gateway.release.set()
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
        await runner.cleanup()


async def test_nginx_serves_tls_redirects_http_and_streams_sse_unbuffered(
    nginx: tuple[int, int, FakeGateway], tls_dir: Path
) -> None:
    http_port, https_port, gateway = nginx
    trusted = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{http_port}/v1/models", allow_redirects=False) as plain:
            assert plain.status == 308
            assert plain.headers["Location"] == "https://127.0.0.1/v1/models"
        async with http.get(f"http://127.0.0.1:{http_port}/nginx-health") as health:
            assert health.status == 200
        # Nothing below may wait on the gateway's end: a buffering proxy would hold the headers or
        # the first event until it finished, and this gives up after 10 s.
        async with asyncio.timeout(10):
            async with http.get(f"https://localhost:{https_port}/v1/stream", ssl=trusted) as stream:
                assert stream.status == 200
                first = await stream.content.readuntil(b"\n\n")
                assert first == b"data: first\n\n"
                assert not gateway.release.is_set()  # the gateway has not finished yet
                gateway.release.set()
                assert await stream.content.read() == b"data: [DONE]\n\n"
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(f"https://localhost:{https_port}/v1/stream", ssl=ssl.create_default_context())
