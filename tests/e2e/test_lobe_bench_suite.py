"""The benchmark suite: `lobe dev --workers 2 --gateways 2 --fake-upstream --plan enterprise` measured
by the `lobe loadtest` command, over HTTP and on the bus, with every process of the suite accounted."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lobe.devtools.loadtest.shape import Shape
from lobe.devtools.loadtest.suite import lobe_dev
from lobe.devtools.loadtest.trace_sink import trace_sink

pytestmark = pytest.mark.integration
SUITE_KINDS = {"gateway", "chat-worker", "billing", "metrics", "nats", "postgres", "redis"}


async def loadtest(*args: str, **env: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lobe.devtools.cli", "loadtest", *args, env={**os.environ, **env}
    )
    return await proc.wait()


async def test_lobe_loadtest_measures_every_process_of_a_two_by_two_bench_suite(tmp_path: Path) -> None:
    common = ["--chunks", "4", "--concurrency", "4", "--requests", "40", "--warmup", "4", "--quiet"]
    async with lobe_dev(Shape(chunks=4), workers=2, gateways=2) as suite:
        assert len(suite.gateway_urls) == 2
        watch = ["--watch-pid", str(suite.pid), "--out", str(tmp_path)]
        http = ["--url", ",".join(suite.gateway_urls), "--api-key", suite.api_key, "--name", "http"]
        assert await loadtest(*http, *watch, *common) == 0
        bus = ["--target", "bus", "--nats-url", suite.nats_url, "--name", "bus"]
        # The embedded NATS has a user per service: the bus target connects as the gateway.
        user, password = suite.nats_credentials
        assert user is not None
        assert password is not None
        assert await loadtest(*bus, *watch, *common, NATS_USER=user, NATS_PASSWORD=password) == 0
    over_http = json.loads((tmp_path / "http.json").read_text())
    (level,) = over_http["levels"]
    assert (level["requests"], level["ok"], level["errors"]) == (40, 40, 0)
    cpu = level["cpu"]
    assert SUITE_KINDS | {"fake-upstream", "supervisor", "client"} <= set(cpu)
    assert (cpu["gateway"]["processes"], cpu["chat-worker"]["processes"]) == (2, 2)
    # CPU times tick in 10 ms: 40 answers are enough to show on the gateways and workers (the fake
    # upstream may spend less than a tick on them).
    assert min(cpu[kind]["cpu_s"] for kind in ("gateway", "chat-worker")) > 0
    suite_ms = sum(cpu[kind]["ms_per_request"] for kind in SUITE_KINDS)
    assert level["suite_cpu_ms_per_request"] == pytest.approx(suite_ms)
    assert (tmp_path / "http.md").read_text().startswith("# lobe loadtest: http")
    over_bus = json.loads((tmp_path / "bus.json").read_text())
    assert over_bus["levels"][0]["ok"] == 40


async def test_a_traced_bench_suite_exports_the_spans_of_every_service_to_the_receiver(
    tmp_path: Path,
) -> None:
    common = ["--chunks", "4", "--concurrency", "2", "--requests", "10", "--warmup", "0", "--quiet"]
    async with trace_sink(keep=True) as sink, lobe_dev(Shape(chunks=4), trace_endpoint=sink.url) as suite:
        http = ["--url", ",".join(suite.gateway_urls), "--api-key", suite.api_key, "--name", "traced"]
        assert await loadtest(*http, "--out", str(tmp_path), *common) == 0
    # Stopped: each service exported what it still held on its way out (lobe.shared.process).
    assert sink.kept is not None
    spans: dict[str, set[str]] = {}
    for body in sink.kept:
        export = ExportTraceServiceRequest.FromString(body)
        for resource in export.resource_spans:
            service = next(
                a.value.string_value for a in resource.resource.attributes if a.key == "service.name"
            )
            names = {span.name for scope in resource.scope_spans for span in scope.spans}
            spans.setdefault(service, set()).update(names)
    assert "POST /v1/chat/completions" in spans["gateway"]
    assert {"chat.run", "chat bench"} <= spans["chat-worker"]
    assert "ledger write" in spans["billing"]
