"""Spans for every bus call, so each service's traces cross NATS without code of its own
(docs/observability.md, "Traces").

- `asking`: a CLIENT span around a request (`send <subject>`); its context rides in the request's
  `traceparent` header.
- `publishing`: a PRODUCER span around a fact's publish (`send <subject>`), the same way.
- `answering`: a SERVER span (CONSUMER for a command nobody waits on) around a responder's
  handler (`process <subject>`), child of the asker's context.
- `storing` / `reading`: a PRODUCER span around an object's put into an Object Store bucket
  (`send <bucket>`, its context in the object's meta message) and a CONSUMER span around its read
  (`process <bucket>`), child of the reader's own work and linked to the put
  (lobe.shared.bus.objects).
- `traced_batches`: a consumer's batch is a trace of its own (`process <STREAM>`, linked to every
  message's producer), and each message whose producer was sampled gets a short CONSUMER span in
  the producer's trace (`process <subject>`), linked back to the batch: a request's trace then
  shows the ledger write its usage went into.

Spans are named after the catalog entry (a patterned subject by its pattern, `chat.cancel.{worker_id}`),
so names stay few whatever the tokens; the concrete subject is an attribute.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from nats.aio.msg import Msg
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from lobe.shared.bus.consume import BatchHandler
from lobe.shared.catalog import ObjectBucket, Subject
from lobe.shared.events.streams import StreamSpec
from lobe.shared.telemetry import extract_context, inject_headers, link_from_headers

TRACER = trace.get_tracer("lobe.shared.bus")
SYSTEM = "nats"


def _attributes(operation: str, subject: str) -> dict[str, str]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.destination.name": subject,
    }


@contextmanager
def asking(entry: Subject, subject: str) -> Iterator[tuple[Span, dict[str, str]]]:
    """The request's span and the headers that carry it."""
    with TRACER.start_as_current_span(
        f"send {entry.subject}", kind=SpanKind.CLIENT, attributes=_attributes("send", subject)
    ) as span:
        yield span, inject_headers()


@contextmanager
def publishing(entry: Subject, headers: dict[str, str]) -> Iterator[tuple[Span, dict[str, str]]]:
    """The publish's span, and `headers` with its context added."""
    with TRACER.start_as_current_span(
        f"send {entry.subject}", kind=SpanKind.PRODUCER, attributes=_attributes("send", entry.subject)
    ) as span:
        yield span, inject_headers(headers)


def unanswered(span: Span) -> None:
    """A request nobody answered in time (or whose reply did not decode): the asker's fail mode
    decides what it means; the span says it happened."""
    span.set_attribute("error.type", "unanswered")
    span.set_status(Status(StatusCode.ERROR))


def _caller(headers: Mapping[str, str] | None) -> otel_context.Context:
    # A message without a traceparent starts a trace of its own rather than joining whatever
    # context the subscription's callback happens to run in.
    if headers and "traceparent" in headers:
        return extract_context(headers)
    return otel_context.Context()


@contextmanager
def answering(entry: Subject, subject: str, headers: Mapping[str, str] | None) -> Iterator[Span]:
    kind = SpanKind.SERVER if entry.reply is not None else SpanKind.CONSUMER
    with TRACER.start_as_current_span(
        f"process {entry.subject}",
        context=_caller(headers),
        kind=kind,
        attributes=_attributes("process", subject),
    ) as span:
        yield span


def _object_attributes(operation: str, bucket: ObjectBucket, name: str) -> dict[str, str]:
    return {**_attributes(operation, bucket.subjects), "lobe.object.name": name}


@contextmanager
def storing(
    bucket: ObjectBucket, name: str, headers: dict[str, str]
) -> Iterator[tuple[Span, dict[str, str]]]:
    """The put's span, and `headers` (for the object's meta message) with its context added."""
    with TRACER.start_as_current_span(
        f"send {bucket.name}", kind=SpanKind.PRODUCER, attributes=_object_attributes("send", bucket, name)
    ) as span:
        yield span, inject_headers(headers)


def reading(bucket: ObjectBucket, name: str, meta_headers: Mapping[str, str] | None) -> Span:
    """The read's span, started and not made current: a read is an async generator, which runs
    in its caller's context between chunks (the caller ends it). Linked to the put's span."""
    link = link_from_headers(meta_headers)
    return TRACER.start_span(
        f"process {bucket.name}",
        kind=SpanKind.CONSUMER,
        links=[link] if link else None,
        attributes=_object_attributes("process", bucket, name),
    )


def traced_batches(stream: StreamSpec, durable: str, handler: BatchHandler) -> BatchHandler:
    """`handler` with a span per batch, and one per sampled message in its producer's trace."""
    batch_attributes = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.destination.name": stream.name,
        "messaging.consumer.group.name": durable,
    }

    async def handle(msgs: Sequence[Msg]) -> float:
        producers = [trace.get_current_span(_caller(msg.headers)) for msg in msgs]
        links = [Link(p.get_span_context()) for p in producers if p.get_span_context().is_valid]
        with TRACER.start_as_current_span(
            f"process {stream.name}",
            context=otel_context.Context(),
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={**batch_attributes, "messaging.batch.message_count": len(msgs)},
        ) as batch:
            back = [Link(batch.get_span_context())]
            # Only where the producer was sampled: an unsampled parent would make a span nobody
            # keeps, at a cost per message.
            each = [
                TRACER.start_span(
                    f"process {msg.subject}",
                    context=trace.set_span_in_context(producer),
                    kind=SpanKind.CONSUMER,
                    links=back,
                    attributes={
                        **_attributes("process", msg.subject),
                        "messaging.consumer.group.name": durable,
                    },
                )
                for msg, producer in zip(msgs, producers, strict=True)
                if producer.get_span_context().trace_flags.sampled
            ]
            try:
                return await handler(msgs)
            finally:
                for span in each:
                    span.end()

    return handle
