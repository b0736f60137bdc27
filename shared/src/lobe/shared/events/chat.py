"""Chat domain: the request command, the reply frames streamed back, and cancellation.

Protocol (core NATS, at-most-once; the usage event is the durable record):

1. The gateway subscribes to `reply_subject(request_id)`, then sends `chat.request` as a NATS
   request to the `chat-worker` queue group. "No responders" means no worker: 503 at once.
2. The worker that takes it answers the NATS request with an `AcceptedFrame` (so the gateway
   knows within a second that someone owns it), then publishes frames to the reply subject:
   deltas, heartbeats while the provider is silent, at most one usage frame, then exactly one
   terminal frame (`done` or `error`).
3. Frames carry a sequence number per request so the gateway detects a gap or a reorder.
4. A `ResetFrame` tells the consumer to drop partial output (a retry restarted the answer).
5. The gateway publishes `chat.cancel.<request_id>` when the client goes away.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.envelope import Event

CHAT_REQUEST = "chat.request"
CHAT_WORKER_QUEUE = "chat-worker"
CHAT_REPLY_PREFIX = "chat.reply"
CHAT_CANCEL_PREFIX = "chat.cancel"
CHAT_CANCEL_ALL = f"{CHAT_CANCEL_PREFIX}.*"


def reply_subject(request_id: str) -> str:
    return f"{CHAT_REPLY_PREFIX}.{request_id}"


def cancel_subject(request_id: str) -> str:
    return f"{CHAT_CANCEL_PREFIX}.{request_id}"


class Caller(BaseModel):
    """Who sent the request, as the gateway authenticated them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=128)
    api_key_id: str | None = Field(default=None, max_length=128)
    plan: str = "free"


class ChatRequested(Event):
    """`chat.request`: run this chat completion and stream the answer to `reply_to`."""

    caller: Caller
    body: ChatCompletionRequest
    reply_to: str = Field(min_length=1, description="Subject the worker publishes frames to.")
    attempt: int = Field(default=1, ge=1, description="Dispatch attempt; >1 after a worker died.")
    deadline_ms: int = Field(default=600_000, ge=1, description="Total time budget for the answer.")


CancelReason = Literal["client_disconnected", "timeout", "shutdown", "abandoned"]


class ChatCancelled(Event):
    """`chat.cancel.<request_id>`: the gateway gave up on the answer; stop the provider call."""

    reason: CancelReason = Field(
        default="client_disconnected", description="abandoned: the gateway failed the answer itself."
    )


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    request_id: str
    seq: int = Field(ge=0, description="Per-request sequence number, from 0.")


class AcceptedFrame(_Frame):
    """Reply to the NATS request: a worker owns this request now."""

    type: Literal["accepted"] = "accepted"
    worker_id: str


class ToolCallDelta(BaseModel):
    """A fragment of a tool call, keyed by index, as OpenAI streams them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int = Field(ge=0)
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class DeltaFrame(_Frame):
    type: Literal["delta"] = "delta"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class HeartbeatFrame(_Frame):
    type: Literal["heartbeat"] = "heartbeat"


class ResetFrame(_Frame):
    """Drop everything received so far: the answer restarts (a provider retry or fallback)."""

    type: Literal["reset"] = "reset"
    reason: str


TokenBasis = Literal["provider", "estimated", "partial"]


class TokenUsage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    basis: TokenBasis = "provider"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageFrame(_Frame):
    type: Literal["usage"] = "usage"
    usage: TokenUsage
    provider: str = Field(default="unknown", description="Provider kind that produced it (for pricing).")
    cost_usd: float | None = Field(default=None, ge=0, description="Set when billing priced it.")


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class DoneFrame(_Frame):
    """Terminal: the answer is complete."""

    type: Literal["done"] = "done"
    finish_reason: FinishReason
    model: str = Field(description="The model that answered, as the provider named it.")
    provider: str


class ErrorFrame(_Frame):
    """Terminal: the answer failed. `status` is the HTTP status the gateway should use."""

    type: Literal["error"] = "error"
    status: int = Field(ge=400, le=599)
    code: str
    message: str
    retryable: bool = False


ReplyFrame = Annotated[
    AcceptedFrame | DeltaFrame | HeartbeatFrame | ResetFrame | UsageFrame | DoneFrame | ErrorFrame,
    Field(discriminator="type"),
]
REPLY_FRAME: TypeAdapter[ReplyFrame] = TypeAdapter(ReplyFrame)
TERMINAL_FRAMES = (DoneFrame, ErrorFrame)


def decode_frame(data: bytes) -> ReplyFrame:
    return REPLY_FRAME.validate_json(data)


CHAT_MODELS = "chat.models"


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    owned_by: str = "lobe"


class ModelList(BaseModel):
    """Reply to `chat.models` (request-reply, any worker answers): the models workers serve."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    models: list[ModelInfo]
