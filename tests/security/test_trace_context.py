"""What a client can do with a `traceparent`: nothing to our traces. At the public listener the
gateway cannot tell an internal caller from anyone else, so a caller's trace context is only a
link on the gateway's server span, which starts a trace of its own: a client cannot put our spans
into a trace it chose (its id, its sampling decision), nor make them children of its span."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from ..e2e.conftest import API_KEY
from .conftest import Browser

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


async def test_a_public_traceparent_is_a_link_not_a_parent(
    browser: Browser, spans: InMemorySpanExporter
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}
    status, _ = await browser.send("GET", "/v1/models", headers, "")
    assert status in (200, 503)  # the answer does not matter: its span does
    [server] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET /v1/models"
    assert format(server.context.trace_id, "032x") != CLIENT_TRACE
    assert server.parent is None
    [link] = server.links
    assert (format(link.context.trace_id, "032x"), format(link.context.span_id, "016x")) == (
        CLIENT_TRACE,
        CLIENT_SPAN,
    )
