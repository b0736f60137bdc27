"""A running suite for the security tests: `lobe dev` (every service its own process and NATS user)
with a secret seeded everywhere one can be: provider keys (the worker sends one to a fake
OpenAI), the dev API key, the admin token, the session signing keys and a signed-in admin's JWT,
a database password in DATABASE_URL, the per-service NATS passwords. The fuzzing and secrets tests
share it (it takes ~10 s to start).

`browser`: the edge alone, for attacks that must leave no trace: a gateway in process with sessions
(Redis) and billing enabled but no billing running, and every message on its NATS recorded (`>`),
so a test sees that an attack caused none, and that a request the gateway admits causes some."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.pgadmin import DatabaseAdmin
from lobe.devtools.ports import free_port
from lobe.devtools.provider_fixtures import load

from ..e2e.sign_in_support import (
    AuthGateway,
    claims,
    key_set,
    new_key,
    sign_in,
    signer_for,
    start_auth_gateway,
)
from ..e2e.test_lobe_dev import READY, LobeDev

ADMIN_EMAIL = "dev@lobe.local"  # lobe dev's admin user signs in with it
# What OpenAI answers a wrong key: the key masked, as a real provider does.
UNAUTHORIZED = json.dumps(
    {
        "error": {
            "message": "Incorrect API key provided: sk-seed***. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
).encode()


class UpstreamThread:
    """A fake OpenAI on loopback, served from its own event loop (the suite is synchronous)."""

    def __init__(self, default: Reply) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: FakeUpstream = self._run(FakeUpstream(default=default).start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class RunningSuite:
    dev: LobeDev
    gateway: str
    billing: str  # billing's ops port: usage and admin API, /metrics
    api_key: str
    admin_token: str
    session: str  # an admin's session JWT
    secrets: dict[str, str] = field(default_factory=dict)  # what must never be logged or echoed

    def logs(self) -> list[str]:
        """Every line the suite logged: each service (lobe dev's output) and the servers' own logs;
        not lobe dev's ready line, which hands the developer the dev key on purpose (README)."""
        lines = [line for line in [*self.dev.out, *self.dev.err] if not READY.match(line.rstrip("\n"))]
        for log in self.dev.state_dir.rglob("*.log"):
            lines += log.read_text(errors="replace").splitlines()
        return lines


def models_yaml(ok: str, refusing: str) -> str:
    return f"""
models:
  - name: mock
    deployments: [{{name: mock, provider: mock}}]
  - name: openai-ok
    deployments: [{{name: openai-ok, provider: openai, base_url: "{ok}/v1", model: gpt-4o-mini}}]
  - name: openai-refusing
    deployments: [{{name: openai-refusing, provider: openai, base_url: "{refusing}/v1", model: gpt-4o-mini}}]
"""


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


@pytest.fixture(scope="session")
def running_suite(
    pg_server: DatabaseAdmin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSuite]:
    root = tmp_path_factory.mktemp("suite")
    seeded = {
        "OPENAI_API_KEY": "sk-seeded-openai-" + secrets.token_hex(16),
        "ANTHROPIC_API_KEY": "sk-ant-seeded-" + secrets.token_hex(16),
        "GEMINI_API_KEY": "AIza-seeded-" + secrets.token_hex(16),
        "BILLING_ADMIN_TOKEN": "admin-token-" + secrets.token_hex(16),
        "database password": "pg-" + secrets.token_hex(16),
    }
    signing_key = new_key("security-test")
    ok = UpstreamThread(load("openai/chat_stream_text.sse").reply())
    refusing = UpstreamThread(Reply(UNAUTHORIZED, status=401, content_type="application/json"))
    models = root / "models.yaml"
    models.write_text(models_yaml(ok.url, refusing.url))
    database = pg_server.take("lobe_security_")
    billing_port = free_port()
    env = {
        **{k: v for k, v in seeded.items() if k.isupper()},
        "DATABASE_URL": with_password(pg_server.dsn(database), seeded["database password"]),
        "SESSION_KEYS": key_set(signing_key),
        "MODELS_FILE": str(models),
        "BILLING_OPS_PORT": str(billing_port),
        "BILLING_ADMIN_URL": f"http://127.0.0.1:{billing_port}",
        "LOG_LEVEL": "DEBUG",  # where leaks hide
    }
    dev = LobeDev(root / "dev", env)
    try:
        ready = dev.wait_ready()
        gateway, api_key = ready.group(2), ready.group(3)
        issuer = asyncio.run(_issuer(gateway))
        session = asyncio.run(sign_in(gateway, issuer, ADMIN_EMAIL)).body["access_token"]
        nats_conf = json.loads((dev.state_dir / "nats" / "nats.conf").read_text())
        nats_passwords = {u["user"]: u["password"] for u in nats_conf["authorization"]["users"]}
        suite = RunningSuite(
            dev,
            gateway,
            f"http://127.0.0.1:{billing_port}",
            api_key,
            seeded["BILLING_ADMIN_TOKEN"],
            session,
            {
                **seeded,
                "dev API key": api_key,
                "session JWT": session,
                "session signing key (d)": signing_key["d"],
                **{f"NATS password of {user}": pw for user, pw in nats_passwords.items()},
            },
        )
        yield suite
    finally:
        if dev.proc.poll() is None:
            dev.proc.send_signal(signal.SIGTERM)
            try:
                dev.proc.wait(30)
            finally:
                dev.kill()
        ok.stop()
        refusing.stop()
        pg_server.drop_later(database)


async def _issuer(gateway: str) -> str:
    """The local OpenID provider lobe dev started: where its sign-in redirects to."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway}/auth/login/oidc", allow_redirects=False) as r,
    ):
        parts = urlsplit(r.headers["Location"])
    return f"{parts.scheme}://{parts.netloc}"


ALLOWED = "https://chat.example.com"  # CORS_ALLOWED_ORIGINS: a front end on another origin
CHAT = "/v1/chat/completions"
BODY = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "spend"}]})
SEEN_WITHIN_S = 10.0


@dataclass
class Bus:
    """Every message on the gateway's NATS, by subject, in the order it arrived."""

    nc: NATS
    subjects: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def record(self, msg: Msg) -> None:
        self.subjects.append(msg.subject)
        self.arrived.set()

    async def wait_for(self, subject: str) -> None:
        async with asyncio.timeout(SEEN_WITHIN_S):
            while subject not in self.subjects:
                self.arrived.clear()
                await self.arrived.wait()


@dataclass
class Browser:
    gateway: AuthGateway
    bus: Bus
    user: str  # a user's session JWT, as the cookie holds it
    admin: str  # an admin's
    http: aiohttp.ClientSession

    async def send(
        self, method: str, path: str, headers: dict[str, str], data: str = BODY
    ) -> tuple[int, dict[str, object]]:
        async with self.http.request(method, self.gateway.url + path, data=data, headers=headers) as r:
            return r.status, await r.json(content_type=None)


@pytest.fixture
async def browser(nats_url: str, redis_url: str) -> AsyncIterator[Browser]:
    """A user's and an admin's session on an edge gateway whose bus is watched (module docstring)."""
    key = new_key("cross-site")
    gateway = await start_auth_gateway(
        nats_url,
        redis_url,
        key_set(key),
        cors_allowed_origins=ALLOWED,
        billing_timeout_s=0.2,  # no billing runs: an admitted request's hold is seen, then 503
        rate_limits_enabled=False,
        cache_enabled=False,
    )
    signer = signer_for(key)
    nc = await nats.connect(nats_url)
    bus = Bus(nc)
    await nc.subscribe(">", cb=bus.record)
    await nc.flush()
    try:
        async with aiohttp.ClientSession() as http:
            yield Browser(
                gateway,
                bus,
                signer.sign_session(claims(user="usr_victim", sid="victim")),
                signer.sign_session(claims(user="usr_admin", sid="admin", role="admin")),
                http,
            )
    finally:
        await nc.close()
        await gateway.runner.cleanup()
