"""Benchmark (not a test): the gateway's side of one answer, hand-over to done frame, in CPU.

    python tests/bench/dispatch_frames.py [--answers 3000] [--rounds 9] [--chunks 20] [--together 20]
                                          [--tracing]

Drives the real `lobe.gateway.dispatch` (ChatDispatcher.open(...).frames()) on a connection stub
that plays nats.py's client: `subscribe` keeps the reply subscription's callback, `request` hands
the worker's frames (`--chunks` deltas, usage, done) to that callback the way nats.py does for
messages read together, then returns the worker's accept. The deltas come `--together` to a
message, as the worker's FrameSink sends those it has ready together (catalog 3.10.0; a stream
whose chunks came in one read: all of them); `--together 1`: one message per delta, as before. Nothing leaves the process, so what is
timed is the gateway's Python between the socket and the frames it yields: the reply
subscription, the hand-over (encoding the request, the trace headers, decoding the accept), the
queue and each frame's decode and checks.

Each answer runs inside a span, as the HTTP middleware runs the chat handler; `--tracing` records
every span as production does (an SDK tracer provider, spans batched to an exporter, here one
that drops them), so the bus's spans and the trace headers are in the count. Prints CPU per answer
and per frame, the median of `--rounds` rounds. Not collected by pytest (no test_ prefix) and not
part of `make test`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from lobe.gateway.dispatch import ChatDispatcher
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus
from lobe.shared.catalog import GATEWAY
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import (
    AcceptedFrame,
    Caller,
    DeltaFrame,
    DeltasFrame,
    DoneFrame,
    TokenUsage,
    UsageFrame,
)
from lobe.shared.process import run_on_service_loop

Callback = Callable[[Any], Awaitable[None]]
TRACER = trace.get_tracer("bench")
CALLER = Caller(user_id="dev", plan="enterprise")
BODY = ChatCompletionRequest.model_validate(
    {"model": "mock", "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
)


@dataclass
class Msg:
    subject: str
    data: bytes
    reply: str = ""
    headers: dict[str, str] | None = None


class Subscription:
    async def unsubscribe(self) -> None:
        return None


class StubConnection:
    """What the dispatch needs of nats.py's client; the worker's answer arrives at once."""

    max_payload = 1024 * 1024

    def __init__(self, chunks: int, together: int) -> None:
        self.callback: Callback | None = None
        self.accept = AcceptedFrame(request_id="bench", seq=0, worker_id="w-1").model_dump_json().encode()
        each = [DeltaFrame(request_id="bench", seq=seq, content="word ") for seq in range(1, chunks + 1)]
        runs = [each[n : n + together] for n in range(0, chunks, together)]
        deltas = [
            run[0].model_dump_json(exclude_none=True)
            if len(run) == 1
            else DeltasFrame(request_id="bench", seq=run[0].seq, deltas=run).model_dump_json(
                exclude_none=True
            )
            for run in runs
        ]
        usage = UsageFrame(
            request_id="bench", seq=chunks + 1, usage=TokenUsage(prompt_tokens=12, completion_tokens=chunks)
        ).model_dump_json(exclude_none=True)
        done = DoneFrame(
            request_id="bench", seq=chunks + 2, finish_reason="stop", model="mock", provider="mock"
        ).model_dump_json(exclude_none=True)
        self.frames = [frame.encode() for frame in (*deltas, usage, done)]

    async def subscribe(self, subject: str, queue: str = "", cb: Callback | None = None) -> Subscription:
        self.callback = cb
        return Subscription()

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 0.5,  # noqa: ASYNC109  # nats.py's signature
        headers: Any = None,
    ) -> Msg:
        assert self.callback is not None
        for data in self.frames:
            await self.callback(Msg("chat.reply", data))
        return Msg("_INBOX.gateway.x", self.accept)

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None) -> None:
        return None


class Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def record_spans() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)


async def answers(dispatcher: ChatDispatcher, count: int) -> float:
    """CPU microseconds per answer."""
    started = time.process_time()
    for n in range(count):
        # Inside the request's span, as the HTTP middleware runs the chat handler.
        with TRACER.start_as_current_span("POST /v1/chat/completions"):
            async for _ in dispatcher.open(f"bench-{n}", CALLER, BODY).frames():
                pass
    return (time.process_time() - started) / count * 1e6


async def main(count: int, rounds: int, chunks: int, together: int) -> None:
    stub = StubConnection(chunks, together)
    settings = GatewaySettings(nats_url="unused")
    dispatcher = ChatDispatcher(Bus.over(stub, GATEWAY), settings)  # type: ignore[arg-type]  # the stub plays nats.py
    await answers(dispatcher, count // 10)  # warm-up
    per_answer = statistics.median([await answers(dispatcher, count) for _ in range(rounds)])
    frames = len(stub.frames)
    print(
        f"{per_answer:.1f} us of CPU per answer of {frames} messages, {per_answer / frames:.2f} us per message"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--together", type=int, default=20, help="deltas per message (1: before 3.10.0)")
    parser.add_argument("--tracing", action="store_true")
    args = parser.parse_args()
    if args.tracing:
        record_spans()
    run_on_service_loop(main(args.answers, args.rounds, args.chunks, args.together))
