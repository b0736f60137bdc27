"""The provider call as an OpenTelemetry span, with the GenAI semantic conventions' attributes.

Every adapter's stream passes through `traced` (HttpProvider.stream for the HTTP adapters, the
mock's own stream), so a provider call looks the same in every trace whatever its wire format:
`chat <model>`, kind CLIENT, with `gen_ai.system`, the requested and the answering model, token
usage and finish reasons. The span is not made current across yields: what the worker does with
each event (publishing frames) belongs to the worker's span, not to the provider's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from lobe.chat_worker.providers.base import Finished, ProviderError, StreamEvent
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import TokenUsage

# Our provider kinds as the conventions' well-known `gen_ai.system` values, where there is one.
GEN_AI_SYSTEMS = {"azure_openai": "az.ai.openai", "gemini": "gcp.gemini"}
TRACER = trace.get_tracer("lobe.chat_worker.providers")


def request_attributes(provider: str, model: str, body: ChatCompletionRequest) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": GEN_AI_SYSTEMS.get(provider, provider),
        "gen_ai.request.model": model,
    }
    optional = {
        "gen_ai.request.max_tokens": body.output_token_limit,
        "gen_ai.request.temperature": body.temperature,
        "gen_ai.request.top_p": body.top_p,
    }
    attributes.update({key: value for key, value in optional.items() if value is not None})
    return attributes


def record(span: Span, event: StreamEvent) -> None:
    if isinstance(event, Finished):
        span.set_attribute("gen_ai.response.model", event.model)
        span.set_attribute("gen_ai.response.finish_reasons", [event.reason])
    elif isinstance(event, TokenUsage):
        span.set_attribute("gen_ai.usage.input_tokens", event.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", event.completion_tokens)


async def traced(
    events: AsyncGenerator[StreamEvent, None],
    provider: str,
    model: str,
    body: ChatCompletionRequest,
    server_address: str | None = None,
) -> AsyncGenerator[StreamEvent, None]:
    """`events` as they come, inside a span of the call to `provider` for upstream `model`."""
    attributes = request_attributes(provider, model, body)
    if server_address:
        attributes["server.address"] = server_address
    span = TRACER.start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes)
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                record(span, event)
                yield event
    except ProviderError as exc:
        span.set_attribute("error.type", exc.code)
        span.set_status(Status(StatusCode.ERROR, f"{exc.status} {exc.message}"))
        raise
    except (asyncio.CancelledError, GeneratorExit):
        span.set_attribute("error.type", "cancelled")  # the client left: not the provider's failure
        raise
    except Exception as exc:
        span.record_exception(exc)
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, str(exc)))
        raise
    finally:
        span.end()
