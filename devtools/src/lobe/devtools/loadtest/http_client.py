"""One chat completion over HTTP (the gateway, or the fake upstream directly), checked as it arrives."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp

from lobe.devtools.loadtest.outcome import AnswerCheck, Outcome
from lobe.devtools.loadtest.shape import PROMPT, Shape


def request_body(model: str, stream: bool, nonce: str = "") -> bytes:
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"{PROMPT} {nonce}" if nonce else PROMPT}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


class HttpTarget:
    """POST /chat/completions to each base URL in turn (`…/v1`, as OpenAI SDKs take it): several
    gateways share the load round robin, as a load balancer in front of them would."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_urls: Sequence[str],
        api_key: str,
        shape: Shape,
        *,
        model: str,
        stream: bool = True,
        coalesced: bool = False,
        cache_miss: bool = False,
    ) -> None:
        self.http = http
        self._urls = itertools.cycle([u.rstrip("/") + "/chat/completions" for u in base_urls])
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.model = model
        self.body = request_body(model, stream)
        # A production request passes the response cache: ask for it (X-Lobe-Cache: on) with a
        # prompt never seen before, so that every request pays a lookup and a miss, never a hit.
        self.cache_miss = cache_miss
        if cache_miss:
            self.headers["X-Lobe-Cache"] = "on"
        self.stream = stream
        self.shape = shape
        self.coalesced = coalesced

    async def __call__(self, due: float) -> Outcome:
        outcome = Outcome(due)
        check = AnswerCheck(self.shape, self.coalesced or not self.stream)
        try:
            body = request_body(self.model, self.stream, uuid.uuid4().hex) if self.cache_miss else self.body
            async with self.http.post(next(self._urls), data=body, headers=self.headers) as response:
                if response.status != 200:
                    detail = (await response.text())[:200]
                    outcome.error = f"http {response.status}: {detail}"
                elif self.stream:
                    outcome.error = await _read_stream(response, check, outcome)
                else:
                    _read_object(await response.json(), check)
        except TimeoutError:
            outcome.error = "timeout: no complete answer in time"
        except (aiohttp.ClientError, OSError) as exc:
            outcome.error = f"connection: {type(exc).__name__} {exc}"
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            outcome.error = f"malformed: {type(exc).__name__} {exc}"
        outcome.total_s = time.perf_counter() - due
        if outcome.error is None:
            outcome.error = check.verdict()
        return outcome


async def _read_stream(response: aiohttp.ClientResponse, check: AnswerCheck, outcome: Outcome) -> str | None:
    """Parse the SSE body; returns an error, or None once `[DONE]` came (checked by the caller)."""
    buffer = b""
    async for data in response.content.iter_any():
        buffer += data
        *events, buffer = buffer.split(b"\n\n")
        for event in events:
            if not event.startswith(b"data: "):
                continue  # comments, keep-alives
            payload = event[6:]
            if payload == b"[DONE]":
                return None
            chunk = json.loads(payload)
            if "error" in chunk:
                error = chunk["error"]
                named = error.get("code") or error.get("message") if isinstance(error, dict) else error
                return f"stream error: {named}"
            _read_chunk(chunk, check, outcome)
    return "truncated: the body ended without [DONE]"


def _read_chunk(chunk: dict[str, Any], check: AnswerCheck, outcome: Outcome) -> None:
    usage = chunk.get("usage")
    if usage:
        check.prompt_tokens, check.completion_tokens = usage["prompt_tokens"], usage["completion_tokens"]
    for choice in chunk["choices"]:
        content = choice.get("delta", {}).get("content")
        if content and check.add(content):
            outcome.ttft_s = time.perf_counter() - outcome.due
        if choice.get("finish_reason"):
            check.finish = choice["finish_reason"]


def _read_object(body: dict[str, Any], check: AnswerCheck) -> None:
    choice = body["choices"][0]
    check.add(choice["message"]["content"] or "")
    check.finish = choice["finish_reason"]
    usage = body.get("usage") or {}
    check.prompt_tokens, check.completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")


def client_session(timeout_s: float) -> aiohttp.ClientSession:
    """No connection cap (the load level sets the concurrency), a bound on each whole request.
    Call it inside the running loop."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=timeout_s)
    )
