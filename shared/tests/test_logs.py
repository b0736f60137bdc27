"""JSON log lines carry the trace and span of the work they were written in, so a log line leads
to its trace and a trace to its log lines."""

from __future__ import annotations

import json
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lobe.shared.logs import JsonFormatter


def line(formatter: JsonFormatter, message: str) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t", "request_id": "r1"})
    parsed: dict[str, object] = json.loads(formatter.format(record))
    return parsed


def test_a_line_written_inside_a_span_names_its_trace_and_span(spans: InMemorySpanExporter) -> None:
    formatter = JsonFormatter("gateway")
    with trace.get_tracer("test").start_as_current_span("work") as span:
        inside = line(formatter, "inside")
    outside = line(formatter, "outside")
    context = span.get_span_context()
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert inside["request_id"] == "r1"
    assert "trace_id" not in outside
