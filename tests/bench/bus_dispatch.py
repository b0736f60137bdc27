"""Benchmark (not a test): what the bus layer adds to a message, decode and dispatch only.

    python tests/bench/bus_dispatch.py [--messages 20000] [--rounds 5]

Drives the subscription callback the way nats.py does (one `await cb(msg)` per message), on a
connection stub whose publish does nothing, so what is timed is the Python between the socket and
the socket: for the chat worker's `chat.request`, decoding ChatRequested, a handler that answers
an AcceptedFrame, encoding it and handing it to publish; for billing's ingest, one batch handed
from a fetch loop to a handler that decodes each usage event and acks it.

- `raw`: the idiom on main before the bus layer (the worker's own nats.py callback; billing's
  loop around lobe.billing.pull);
- `bus`: the same handler behind Bus.responds / Bus.consume's dispatch.

Prints CPU microseconds per message, the median of `--rounds` interleaved rounds. Not collected by
pytest (no test_ prefix) and not part of `make test`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lobe.shared.bus import Bus
from lobe.shared.catalog import CHAT_WORKER
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import CHAT_REQUEST, AcceptedFrame, Caller, ChatRequested, TokenUsage
from lobe.shared.events.usage import UsageRecorded
from lobe.shared.process import run_on_service_loop

Callback = Callable[[Any], Awaitable[None]]


@dataclass
class Msg:
    subject: str
    data: bytes
    reply: str
    headers: dict[str, str] | None = None

    async def respond(self, data: bytes) -> None:
        await STUB.publish(self.reply, data)

    async def ack(self) -> None:
        return None


class StubConnection:
    """What Bus.responds needs of nats.py's client; nothing leaves the process."""

    def __init__(self) -> None:
        self.callback: Callback | None = None

    async def subscribe(self, subject: str, queue: str = "", cb: Callback | None = None) -> None:
        self.callback = cb

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "", headers: Any = None) -> None:
        return None

    async def flush(self) -> None:
        return None


STUB = StubConnection()


def request_body() -> bytes:
    body = ChatCompletionRequest.model_validate(
        {"model": "mock", "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}
    )
    event = ChatRequested(
        request_id="bench-1",
        caller=Caller(user_id="dev", plan="enterprise"),
        body=body,
        reply_to="chat.reply.bench-1.1",
    )
    return event.encode()


def accept(event: ChatRequested, headers: Mapping[str, str] | None = None) -> AcceptedFrame:
    return AcceptedFrame(request_id=event.request_id, seq=0, worker_id="w-1")


async def raw_request(msg: Msg) -> None:
    """main's ChatWorker._on_request and accept(): decode in the callback, respond with bytes."""
    try:
        event = ChatRequested.decode(msg.data)
        reply = accept(event, msg.headers).model_dump_json().encode()
    except Exception:
        return
    await msg.respond(reply)


async def time_callback(cb: Callback, msgs: list[Msg]) -> float:
    started = time.process_time()
    for msg in msgs:
        await cb(msg)
    return (time.process_time() - started) / len(msgs) * 1e6


def usage_body(n: int) -> bytes:
    return UsageRecorded(
        request_id=f"bench-{n}",
        user_id="dev",
        provider="mock",
        deployment="mock-1",
        model="mock",
        usage=TokenUsage(prompt_tokens=12, completion_tokens=30),
        status="ok",
        duration_ms=10,
    ).encode()


async def handle(msgs: Sequence[Msg]) -> float:
    for msg in msgs:
        UsageRecorded.decode(msg.data)
        await msg.ack()
    return 0.0


async def time_batches(
    run: Callable[[Sequence[Msg]], Awaitable[float]], msgs: list[Msg], batch: int
) -> float:
    started = time.process_time()
    for i in range(0, len(msgs), batch):
        await run(msgs[i : i + batch])
    return (time.process_time() - started) / len(msgs) * 1e6


async def main(messages: int, rounds: int) -> None:
    bus = Bus.over(STUB, CHAT_WORKER)  # type: ignore[arg-type]  # the stub stands in for nats.py's client
    await bus.responds(CHAT_REQUEST, accept, with_headers=True)
    assert STUB.callback is not None
    through_bus = STUB.callback
    data = request_body()
    requests = [Msg(CHAT_REQUEST, data, "_INBOX.gateway.x") for _ in range(messages)]
    usage = [Msg("usage.recorded", usage_body(n), "$JS.ACK.x") for n in range(messages)]

    async def consume_dispatch(msgs: Sequence[Msg]) -> float:
        # Bus.consume's loop body around the handler: the try and the pause check.
        try:
            pause = await handle(msgs)
        except Exception:
            pause = 1.0
        return pause

    results: dict[str, list[float]] = {
        k: [] for k in ("request raw", "request bus", "ingest raw", "ingest bus")
    }
    for _ in range(rounds):
        results["request raw"].append(await time_callback(raw_request, requests))
        results["request bus"].append(await time_callback(through_bus, requests))
        results["ingest raw"].append(await time_batches(handle, usage, 100))
        results["ingest bus"].append(await time_batches(consume_dispatch, usage, 100))
    print("| path | idiom | CPU per message (median) |")
    print("|---|---|---:|")
    for name, values in results.items():
        path, idiom = name.split()
        print(f"| {path} | {idiom} | {statistics.median(values):.2f} us |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run_on_service_loop(main(args.messages, args.rounds))
