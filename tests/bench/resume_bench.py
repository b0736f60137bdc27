"""Benchmark (not a test): what a resumable stream costs the answer loop, per frame.

    python tests/bench/resume_bench.py [--answers 300] [--frames 50]

The gateway's answer loop (lobe.gateway.answer.Answer.deliver) over a dispatch that yields
`--frames` deltas, then usage and done, into an SSE output whose client is an in-memory sink, so
only the gateway's own work is measured: plain SSE (what every stream does without
`X-Lobe-Resumable`) against a resumable one keeping its events in a real redis-server (this
process's side of it: the ids, the hand-over, the pipelined XADDs; the Redis server's CPU is its
own process's). Two arrival shapes: `paced`, each frame alone (a flush, and so one Redis round
trip, per frame: a model streaming slower than the gateway writes), and `burst`, the frames of
an answer arriving together (one flush). CPU time of this process (time.process_time) per frame,
the median of 5 rounds, interleaved. Prints a table; not collected by pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from redis.asyncio import Redis

from lobe.devtools.servers import RedisServer
from lobe.gateway.answer import Answer
from lobe.gateway.dispatch import IDLE, AnswerFrame, Idle
from lobe.gateway.openai_format import ChunkWriter
from lobe.gateway.outputs import SseOutput
from lobe.gateway.resume.output import ResumableSseOutput
from lobe.gateway.resume.store import ResumeStore
from lobe.gateway.resume.writer import ReplayWriter
from lobe.gateway.settings import GatewaySettings
from lobe.shared.events.chat import CancelReason, DeltaFrame, DoneFrame, TokenUsage, UsageFrame


class Sink:
    """The client's connection, in memory."""

    async def write(self, data: bytes) -> None:
        pass

    async def write_eof(self, data: bytes = b"") -> None:
        pass


class PlainToSink(SseOutput):
    async def _opened(self) -> Any:
        self.response = self.response or Sink()  # type: ignore[assignment]
        return self.response


class ResumableToSink(ResumableSseOutput):
    async def _opened(self) -> Any:
        self.response = self.response or Sink()  # type: ignore[assignment]
        return self.response


class Frames:
    owner: str | None = "bench-worker"
    accepted_at: float | None = None

    def __init__(self, frames: list[AnswerFrame], paced: bool) -> None:
        self.stored = frames
        self.paced = paced

    async def frames(self) -> AsyncGenerator[AnswerFrame | Idle, None]:
        for frame in self.stored:
            if self.paced:
                yield IDLE
            yield frame

    async def cancel(self, reason: CancelReason) -> None:
        pass


def answer_frames(n: int) -> list[AnswerFrame]:
    frames: list[AnswerFrame] = [
        DeltaFrame(request_id="r", seq=i, content=f"word{i} ") for i in range(1, n + 1)
    ]
    usage = TokenUsage(prompt_tokens=20, completion_tokens=n)
    frames.append(UsageFrame(request_id="r", seq=n + 1, usage=usage))
    frames.append(DoneFrame(request_id="r", seq=n + 2, finish_reason="stop", model="mock", provider="mock"))
    return frames


async def unpriced(frame: UsageFrame) -> UsageFrame:
    return frame


async def run(
    kind: str, store: ResumeStore, frames: list[AnswerFrame], paced: bool, answers: int, round_: int
) -> float:
    """CPU microseconds per frame over `answers` answers of this kind."""
    request = make_mocked_request("POST", "/v1/chat/completions")
    started = time.process_time()
    for n in range(answers):
        i = f"{round_}-{paced}-{n}"  # a stream per answer: a replay is written once
        chunks = ChunkWriter(f"bench{i}", "mock", True)
        output: SseOutput
        if kind == "plain":
            output = PlainToSink(request, chunks, {})
        else:
            await store.open(f"{kind}{i}", "bench")
            output = ResumableToSink(request, chunks, {}, ReplayWriter(store, f"{kind}{i}", store.writing))
        dispatch: Any = Frames(frames, paced)  # the shape of a Dispatch, in memory
        answer = Answer(dispatch, unpriced, time.monotonic(), live=False, expose_deployment=False)
        response = await answer.deliver(output)
        assert isinstance(response, Sink | web.StreamResponse)
        await asyncio.gather(*store.writing)  # what the replay costs counts in full
    return (time.process_time() - started) / (answers * len(frames)) * 1e6


async def main(answers: int, n: int) -> None:
    frames = answer_frames(n)
    with RedisServer() as server:
        redis = Redis.from_url(server.url)
        store = ResumeStore(redis, GatewaySettings(resume_window_s=60))
        results: dict[tuple[str, str], list[float]] = {}
        for round_ in range(5):
            for shape in ("paced", "burst"):
                for kind in ("plain", "resumable"):
                    per_frame = await run(kind, store, frames, shape == "paced", answers, round_)
                    results.setdefault((shape, kind), []).append(per_frame)
        await redis.aclose()
    print(f"{answers} answers of {n} deltas (+ usage, done) per round, median of 5 rounds, CPU us per frame")
    print(f"{'arrival':<8} {'plain':>8} {'resumable':>10} {'added':>8} {'added per answer':>17}")
    for shape in ("paced", "burst"):
        plain = statistics.median(results[(shape, "plain")])
        resumable = statistics.median(results[(shape, "resumable")])
        added = resumable - plain
        print(f"{shape:<8} {plain:>8.1f} {resumable:>10.1f} {added:>+8.1f} {added * len(frames):>+14.0f} us")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", type=int, default=300)
    parser.add_argument("--frames", type=int, default=50)
    return parser.parse_args()


if __name__ == "__main__":
    options = arguments()
    asyncio.run(main(options.answers, options.frames))
