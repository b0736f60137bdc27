"""Head sampling as an operator sets it (OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG), honoured
by the shared setup every service runs (lobe.shared.telemetry.setup_tracing): a real process
exporting over OTLP/HTTP to a receiver here."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lobe.devtools.loadtest.trace_sink import trace_sink
from lobe.devtools.ports import free_port
from lobe.shared.settings import TelemetrySettings
from lobe.shared.telemetry import sampler

PROBE = Path(__file__).with_name("traced_probe.py")
SAMPLED_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UNSAMPLED_TRACE = "0af7651916cd43dd8448eb211c80319c"


async def traced_requests(ratio: str) -> list[str]:
    """One request with no trace context, one with a sampled and one with an unsampled caller's
    `traceparent`, through a process sampling parentbased_traceidratio at `ratio`: the trace ids
    of the spans it exported."""
    port = free_port()
    async with trace_sink(keep=True) as sink:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env |= {
            "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": ratio,
        }
        probe = await asyncio.create_subprocess_exec(
            sys.executable, str(PROBE), str(port), env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert probe.stdin is not None
        assert probe.stdout is not None
        assert await asyncio.wait_for(probe.stdout.readline(), 30) == b"ready\n"
        url = f"http://127.0.0.1:{port}/v1/ping"
        async with aiohttp.ClientSession() as http:
            for headers in (
                {},
                {"traceparent": f"00-{SAMPLED_TRACE}-00f067aa0ba902b7-01"},
                {"traceparent": f"00-{UNSAMPLED_TRACE}-00f067aa0ba902b7-00"},
            ):
                async with http.get(url, headers=headers) as response:
                    assert response.status == 200
        probe.stdin.close()
        assert await asyncio.wait_for(probe.wait(), 30) == 0
        assert sink.kept is not None
        return [
            span.trace_id.hex()
            for body in sink.kept
            for resource in ExportTraceServiceRequest.FromString(body).resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


async def test_a_ratio_of_0_exports_no_span_of_its_own_and_follows_a_sampled_caller() -> None:
    assert await traced_requests("0") == [SAMPLED_TRACE]


async def test_a_ratio_of_1_exports_every_trace_that_starts_here_and_still_follows_the_caller() -> None:
    exported = await traced_requests("1")
    assert len(exported) == 2
    assert SAMPLED_TRACE in exported
    assert UNSAMPLED_TRACE not in exported


def test_unset_every_trace_is_recorded_when_exported_and_none_started_here_when_not() -> None:
    exporting = sampler(TelemetrySettings(otel_exporter_otlp_endpoint="http://collector:4318"))
    silent = sampler(TelemetrySettings(otel_exporter_otlp_endpoint=None))
    assert exporting.get_description().startswith("ParentBased{root:AlwaysOnSampler")
    assert silent.get_description().startswith("ParentBased{root:AlwaysOffSampler")
    assert "localParentSampled:AlwaysOnSampler" in silent.get_description()


def test_a_sampler_name_the_sdk_does_not_know_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="otel_traces_sampler"):
        TelemetrySettings(otel_traces_sampler="sometimes")  # type: ignore[arg-type]
