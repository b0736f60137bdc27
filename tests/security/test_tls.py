"""TLS to NATS, PostgreSQL and Redis as settings.

NATS: a nats-server that requires TLS, its certificate signed by a CA this test makes
(deploy/nginx/make-tls.sh, the suite's one way to make a local CA), and per-service users: the
gateway (nats.py) and a chat worker (FastStream) answer a chat request over it with
NATS_TLS_CA_FILE; the server reports every one of their connections as TLS; a client that does not
trust the CA, or speaks plain NATS, is refused. PostgreSQL and Redis: their settings turn the CA
into what asyncpg and redis-py read.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import nats
import openai
import pytest

from lobe.devtools.pytest_plugin import HARNESS_USER
from lobe.devtools.servers import BusUsers, NatsServer, ServerTls
from lobe.shared.bus import connect_options
from lobe.shared.catalog import CHAT_WORKER, GATEWAY
from lobe.shared.settings import DatabaseSettings, NatsSettings, RedisSettings

from ..e2e.conftest import API_KEY, start_gateway, start_worker

MAKE_TLS = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "make-tls.sh"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt and server.crt/server.key for localhost and 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run([MAKE_TLS, directory, "localhost,127.0.0.1"], check=True, capture_output=True, timeout=60)
    return directory


@pytest.fixture
def tls_nats(certificates: Path) -> Iterator[NatsServer]:
    tls = ServerTls(certificates / "server.crt", certificates / "server.key")
    with NatsServer(tls=tls, users=BusUsers.generate(superuser=HARNESS_USER)) as server:
        yield server


def connections(server: NatsServer) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"http://{server.host}:{server.monitor_port}/connz", timeout=5) as resp:
        return list(json.load(resp)["connections"])


async def test_services_talk_over_tls_to_a_nats_server_signed_by_the_configured_ca(
    tls_nats: NatsServer, certificates: Path
) -> None:
    assert tls_nats.url.startswith("tls://")
    assert tls_nats.users is not None
    ca = {"nats_tls_ca_file": certificates / "ca.crt"}
    worker = await start_worker(tls_nats.url, **ca, **tls_nats.users.settings(CHAT_WORKER))
    runner, base_url = await start_gateway(tls_nats.url, **ca, **tls_nats.users.settings(GATEWAY))
    try:
        client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
        answer = await client.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "over TLS?"}]
        )
        assert answer.choices[0].finish_reason == "stop"
        by_name = {str(c.get("name", "")).split(" ")[0]: c for c in connections(tls_nats)}
        assert {GATEWAY, CHAT_WORKER} <= set(by_name)
        for name in (GATEWAY, CHAT_WORKER):
            assert str(by_name[name].get("tls_version", "")).startswith("1."), by_name[name]
    finally:
        await runner.cleanup()
        await worker.stop()


async def test_a_client_that_does_not_trust_the_ca_or_speaks_plain_nats_is_refused(
    tls_nats: NatsServer,
) -> None:
    assert tls_nats.users is not None
    credentials = tls_nats.users.connect_kwargs(HARNESS_USER)
    once = {"allow_reconnect": False, "connect_timeout": 2, **credentials}
    untrusting = ssl.create_default_context()  # the system's CAs only
    with pytest.raises(ssl.SSLCertVerificationError):
        await nats.connect(tls_nats.url, tls=untrusting, **once)
    # A nats:// client without TLS settings: the server demands TLS, nats.py upgrades with the
    # system's CAs, and the handshake fails the same way; nothing travels in the clear.
    with pytest.raises(ssl.SSLCertVerificationError):
        await nats.connect(f"nats://{tls_nats.host}:{tls_nats.port}", **once)


def test_nats_tls_settings_build_a_context_that_verifies_the_server(certificates: Path) -> None:
    settings = NatsSettings(nats_url="nats://127.0.0.1:4222", nats_tls_ca_file=certificates / "ca.crt")
    context = connect_options(settings, "gateway")["tls"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert "tls" not in connect_options(NatsSettings(nats_url="nats://127.0.0.1:4222"), "gateway")
    assert "tls" in connect_options(NatsSettings(nats_url="tls://nats.example:4222"), "gateway")


def test_database_tls_ca_file_makes_the_dsn_verify_the_server(tmp_path: Path) -> None:
    ca = tmp_path / "pg-ca.crt"
    settings = DatabaseSettings(
        database_url="postgresql://billing:pw@db.example:5432/lobe?application_name=billing",
        database_tls_ca_file=ca,
    )
    query = parse_qs(urlsplit(settings.database_url.get_secret_value()).query)
    assert query == {"application_name": ["billing"], "sslmode": ["verify-full"], "sslrootcert": [str(ca)]}
    plain = DatabaseSettings(database_url="postgresql://billing@db.example/lobe")
    assert plain.database_url.get_secret_value() == "postgresql://billing@db.example/lobe"


def test_redis_tls_ca_file_makes_redis_py_use_tls_and_verify_the_server(tmp_path: Path) -> None:
    ca = tmp_path / "redis-ca.crt"
    settings = RedisSettings(redis_url="redis://:pw@redis.example:6379/0", redis_tls_ca_file=ca)
    options = settings.redis_from_url(settings.redis_url)
    assert options == {
        "url": "rediss://:pw@redis.example:6379/0",
        "ssl_ca_certs": str(ca),
        "ssl_cert_reqs": "required",
    }
    plain = RedisSettings(redis_url="redis://r:6379/0")
    assert plain.redis_from_url(plain.redis_url) == {"url": "redis://r:6379/0"}
