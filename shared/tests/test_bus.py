"""Stream declaration: the replica count comes from configuration (NATS_STREAM_REPLICAS)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError

from lobe.devtools.servers import NatsServer
from lobe.devtools.servers.nats import NatsCluster
from lobe.shared.bus import connect_options, ensure_streams, stream_config
from lobe.shared.events.streams import ALL_STREAMS, USAGE
from lobe.shared.settings import NatsSettings


def test_stream_replicas_come_from_nats_stream_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    assert NatsSettings().nats_stream_replicas == 1
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "3")
    replicas = NatsSettings().nats_stream_replicas
    assert replicas == 3
    assert stream_config(USAGE, replicas).num_replicas == 3
    assert stream_config(USAGE).num_replicas == 1


def test_stream_replicas_outside_what_jetstream_allows_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "0")
    with pytest.raises(ValueError, match="nats_stream_replicas"):
        NatsSettings()


@pytest.fixture
def nats_cluster() -> Iterator[list[NatsServer]]:
    with NatsCluster(3) as cluster:
        yield cluster.nodes


@pytest.mark.integration
async def test_ensure_streams_declares_three_replicas_on_a_three_node_cluster(
    nats_cluster: list[NatsServer],
) -> None:
    nc = await nats.connect([node.url for node in nats_cluster])
    try:
        js = nc.jetstream(timeout=1)
        # The cluster elects its JetStream meta leader after the nodes are up; until then stream
        # requests fail (503) or go unanswered, so ask again, for 20 s at most.
        for _ in range(40):
            try:
                await ensure_streams(js, replicas=3)
                break
            except (APIError, NatsTimeoutError):
                await asyncio.sleep(0.5)
        for spec in ALL_STREAMS:
            info = await js.stream_info(spec.name)
            assert info.config.num_replicas == 3
            assert info.cluster is not None
            assert len(info.cluster.replicas or []) == 2  # the leader plus two followers
        # A second start with the same setting changes nothing.
        await ensure_streams(js, replicas=3)
        assert (await js.stream_info(USAGE.name)).config.num_replicas == 3
    finally:
        await nc.close()


@pytest.mark.integration
async def test_the_streams_owner_brings_an_existing_stream_to_the_catalogs_duplicate_window(
    nats_url: str,
) -> None:
    # A deployment from before the window was shortened: an hour of message ids in memory.
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        old = stream_config(USAGE)
        old.duplicate_window = 3600.0
        await js.add_stream(old)
        await ensure_streams(js, replicas=1)  # a gateway or a worker: may not change it
        assert (await js.stream_info(USAGE.name)).config.duplicate_window == 3600.0
        await ensure_streams(js, replicas=1, owner=True)  # billing
        assert (await js.stream_info(USAGE.name)).config.duplicate_window == USAGE.duplicate_window_s == 300
    finally:
        await nc.close()


def test_each_service_connects_with_its_own_user_and_inbox_prefix() -> None:
    settings = NatsSettings(nats_url="nats://a:4222, nats://b:4222", nats_user="billing", nats_password="pw")
    options = connect_options(settings, "billing")
    assert options["servers"] == ["nats://a:4222", "nats://b:4222"]
    assert (options["user"], options["password"], options["inbox_prefix"]) == (
        "billing",
        "pw",
        "_INBOX.billing",
    )
    # A task run under billing's user (`lobe-admin` in a billing pod) reads billing's inbox.
    assert connect_options(settings, "admin (lobe admin)")["inbox_prefix"] == "_INBOX.billing"
    anonymous = NatsSettings(nats_url="nats://a:4222")
    assert connect_options(anonymous, "chat-worker w-1")["inbox_prefix"] == "_INBOX.chat-worker"
    assert "pw" not in repr(settings)  # a SecretStr: never in a log line


def test_a_credentials_file_is_passed_to_nats_py(tmp_path: Path) -> None:
    creds = tmp_path / "billing.creds"
    settings = NatsSettings(nats_creds=creds)
    assert connect_options(settings, "billing")["user_credentials"] == str(creds)


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"NATS_PASSWORD": "pw"}, "without NATS_USER"),
        ({"NATS_USER": "u", "NATS_CREDS": "/x.creds"}, "not both"),
        ({"NATS_TLS_CERT_FILE": "/c.pem"}, "go together"),
    ],
)
def test_half_configured_nats_credentials_are_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], error: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=error):
        NatsSettings()
