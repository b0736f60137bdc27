"""A running suite for the security tests: `lobe dev` (every service its own process and NATS user)
with a secret seeded everywhere one can be: provider keys (the worker sends one to a fake
OpenAI), the dev API key, the admin token, the session signing keys and a signed-in admin's JWT,
a database password in DATABASE_URL, the per-service NATS passwords. The fuzzing and secrets tests
share it (it takes ~10 s to start)."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest

from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.pgadmin import DatabaseAdmin
from lobe.devtools.ports import free_port
from lobe.devtools.provider_fixtures import load

from ..e2e.sign_in_support import key_set, new_key, sign_in
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
