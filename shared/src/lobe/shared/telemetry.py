"""OpenTelemetry: a tracer provider per process, and context carried in NATS headers."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import Link

from lobe.shared.settings import TelemetrySettings, TraceSampler


def setup_tracing(settings: TelemetrySettings, service: str) -> TracerProvider:
    """Install the global tracer provider; export over OTLP/HTTP only when an endpoint is set."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name or service}),
        sampler=sampler(settings),
    )
    if settings.otel_exporter_otlp_endpoint:
        # Imported here: the exporter pulls in protobuf, which a process without export never needs.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


def sampler(settings: TelemetrySettings) -> Sampler:
    """OTEL_TRACES_SAMPLER / _ARG when set (the SDK's names and meaning). Unset: every trace when
    spans are exported; when they are not, none that starts here, since a span nobody exports is
    CPU for nothing (every span of a request, every Redis command's: docs/performance.md). A
    caller's sampled `traceparent` is followed either way, and unsampled spans still carry trace
    ids for the logs and the next hop."""
    if settings.otel_traces_sampler is not None:
        return named_sampler(settings.otel_traces_sampler, settings.otel_traces_sampler_arg)
    return ParentBased(ALWAYS_ON if settings.otel_exporter_otlp_endpoint else ALWAYS_OFF)


def named_sampler(name: TraceSampler, ratio: float | None) -> Sampler:
    roots: dict[str, Sampler] = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
        "traceidratio": TraceIdRatioBased(1.0 if ratio is None else ratio),
    }
    if name.startswith("parentbased_"):
        return ParentBased(roots[name.removeprefix("parentbased_")])
    return roots[name]


def inject_headers(headers: dict[str, str] | None = None) -> dict[str, str]:
    """Current trace context as W3C `traceparent` headers for a NATS message."""
    carrier = dict(headers or {})
    propagate.inject(carrier)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> context.Context:
    return propagate.extract(dict(headers or {}))


def link_from_headers(headers: Mapping[str, str] | None) -> Link | None:
    """A link to the span whose context these headers carry; None when they carry none. For work
    done in batches: one span per batch, linked to each message's trace."""
    span_context = trace.get_current_span(extract_context(headers)).get_span_context()
    return Link(span_context) if span_context.is_valid else None
