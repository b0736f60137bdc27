"""Stream declaration: the replica count comes from configuration (NATS_STREAM_REPLICAS)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import APIError

from lobe.devtools.ports import free_port
from lobe.devtools.servers import NatsServer
from lobe.shared.bus import ensure_streams, stream_config
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


class ClusterNode(NatsServer):
    """One node of a three-node JetStream cluster on loopback."""

    def __init__(self, index: int, cluster_ports: list[int]) -> None:
        super().__init__()
        self.index = index
        self.cluster_ports = cluster_ports

    def command(self) -> list[str]:
        routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.cluster_ports)
        return [
            *super().command(),
            "--server_name", f"lobe-n{self.index}",
            "--cluster_name", "lobe",
            "--cluster", f"nats://127.0.0.1:{self.cluster_ports[self.index]}",
            "--routes", routes,
        ]  # fmt: skip


@pytest.fixture
def nats_cluster() -> Iterator[list[NatsServer]]:
    ports = [free_port() for _ in range(3)]
    with contextlib.ExitStack() as stack:
        nodes = [ClusterNode(i, ports) for i in range(3)]
        for node in nodes:
            node.spawn()
            stack.callback(node.close)
        for node in nodes:
            node.wait_ready()
        yield nodes


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
