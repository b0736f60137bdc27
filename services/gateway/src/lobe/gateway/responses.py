"""POST /v1/responses: OpenAI's Responses API, answered as a chat request (docs/responses.md).

The request is parsed (lobe.gateway.responses_schema) and translated to the chat request the
workers run (lobe.gateway.responses_input), then goes through chat's edge and answer unchanged:
rate limits, the budget hold (the prompt's token ceiling plus `max_output_tokens`), the response
cache (in a namespace of its own), a worker on `chat.request` with `endpoint: responses` (which
refuses a model whose routing does not serve responses, and records the usage as kind `response`).
Only what is written differs: the frames are rendered as Responses events or the `response` object
(lobe.gateway.responses_output) by the outputs every endpoint shares (lobe.gateway.outputs),
so a stream asked to be resumable is one, an id on each event, as chat's (lobe.gateway.resume).
"""

from __future__ import annotations

import time

from aiohttp import web

from lobe.gateway.chat import STREAM_KEY, admitted_body, deliver, open_account, open_answer
from lobe.gateway.metrics import RESPONSES_REQUESTS
from lobe.gateway.outputs import JsonOutput, Output
from lobe.gateway.responses_format import ResponseEvents
from lobe.gateway.responses_input import chat_request, parse_responses_body
from lobe.gateway.responses_output import ResponseAssembler, ResponseChunks
from lobe.gateway.responses_schema import ResponsesRequest
from lobe.gateway.resume.detach import detached_if_resumable
from lobe.gateway.resume.output import sse_output
from lobe.gateway.status_count import counted
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.openai_errors import ApiError


async def responses(request: web.Request) -> web.StreamResponse:
    def count(status: int) -> None:
        RESPONSES_REQUESTS.labels(status=str(status), stream=request.get(STREAM_KEY, "unknown")).inc()

    # A resumable stream runs apart from this handler, as chat's (lobe.gateway.resume.detach).
    return await counted(
        detached_if_resumable(request, _responses(request, time.monotonic())), count, "responses"
    )


async def _responses(request: web.Request, received_at: float) -> web.StreamResponse:
    account = await open_account(request, received_at, "responses")
    asked: list[ResponsesRequest] = []  # the request as the client sent it: the events echo it

    async def parse(request: web.Request) -> ChatCompletionRequest:
        asked.append(await parse_responses_body(request))
        return chat_request(asked[0])

    async with account:  # what the request took is given back or settled on the way out
        try:
            body = await admitted_body(request, account, parse)
            request[STREAM_KEY] = "true" if body.stream else "false"
            body = await account.reserve(request, body)
            answer, headers = open_answer(request, account, body)
            events = ResponseEvents(account.request_id, asked[0])
            output: Output = (
                await sse_output(
                    request, ResponseChunks(events), headers, account.request_id, account.caller.user_id
                )
                if body.stream
                else JsonOutput(ResponseAssembler(events), headers)
            )
            return await deliver(request, answer, output)
        except ApiError as exc:
            exc.headers.setdefault("X-Request-Id", account.request_id)
            raise
