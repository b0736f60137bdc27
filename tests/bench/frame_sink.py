"""Benchmark (not a test): the chat worker's side of one answer's frames, in CPU.

    python tests/bench/frame_sink.py [--answers 3000] [--rounds 9] [--chunks 20]

Builds `--chunks` deltas as the worker's run does (lobe.chat_worker.run: a msgspec WireDelta per
provider chunk, the first with the route), then the usage and done frames, and sends them through
the real FrameSink on a connection stub whose publish only counts. The deltas are sent without a
suspension between them, as the worker relays chunks that came in one read, so the sink publishes
them together (one `deltas` frame). What is timed is the Python from a provider chunk to the bytes
handed to nats.py: building, numbering, encoding and publishing each frame, and the sink's tasks.
Prints CPU per answer and the messages published per answer, the median of `--rounds` rounds.
Not collected by pytest (no test_ prefix) and not part of `make test`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import msgspec

from lobe.chat_worker.frames import FrameSink
from lobe.shared.events.chat import DoneFrame, Route, TokenUsage, UsageFrame
from lobe.shared.events.chat_wire import WireDelta, WireRoute
from lobe.shared.process import run_on_service_loop

ROUTE = Route(deployment="mock-1", provider="mock", model="mock", attempts=1)


class StubConnection:
    def __init__(self) -> None:
        self.published = 0

    async def publish(self, subject: str, payload: bytes = b"") -> None:
        self.published += 1


async def answer(stub: StubConnection, n: int, chunks: int) -> None:
    request_id = f"bench-{n}"
    async with FrameSink(stub, f"chat.reply.{request_id}.1", request_id, heartbeat_s=60) as sink:  # type: ignore[arg-type]  # the stub plays nats.py
        for chunk in range(chunks):
            frame = WireDelta(request_id=request_id, seq=sink.next_seq(), content="word ")
            if chunk == 0:
                frame = msgspec.structs.replace(frame, route=WireRoute.of(ROUTE))
            await sink.send(frame)
        usage = TokenUsage(prompt_tokens=12, completion_tokens=chunks)
        await sink.send(UsageFrame(request_id=request_id, seq=sink.next_seq(), usage=usage, provider="mock"))
        done = DoneFrame(
            request_id=request_id, seq=sink.next_seq(), finish_reason="stop", model="mock", provider="mock"
        )
        await sink.send(done)


async def answers(stub: StubConnection, count: int, chunks: int) -> float:
    """CPU microseconds per answer."""
    started = time.process_time()
    for n in range(count):
        await answer(stub, n, chunks)
    return (time.process_time() - started) / count * 1e6


async def main(count: int, rounds: int, chunks: int) -> None:
    stub = StubConnection()
    await answers(stub, count // 10, chunks)  # warm-up
    stub.published = 0
    per_answer = statistics.median([await answers(stub, count, chunks) for _ in range(rounds)])
    messages = stub.published / (count * rounds)
    print(f"{per_answer:.1f} us of CPU per answer of {chunks} deltas, {messages:g} messages per answer")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--chunks", type=int, default=20)
    args = parser.parse_args()
    run_on_service_loop(main(args.answers, args.rounds, args.chunks))
