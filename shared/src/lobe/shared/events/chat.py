"""Chat domain: the request command, the reply frames streamed back, and cancellation.

Protocol (core NATS, at-most-once; the usage event is the durable record):

1. The gateway subscribes to a reply subject of its own for this hand-over
   (`chat.reply.<request_id>.<offer>`), then sends `chat.request` as a NATS request to the
   `chat-worker` queue group. "No responders" means no worker: 503 at once.
2. The worker that takes it answers the NATS request with an `AcceptedFrame` (so the gateway
   knows within a second that someone owns it, and which worker), then publishes frames to the
   reply subject: deltas, heartbeats while the provider is silent, at most one usage frame, then
   exactly one terminal frame (`done` or `error`).
3. Frames carry a sequence number per request so the gateway detects a gap or a reorder. The
   deltas a worker has ready together go out as one `DeltasFrame` (since 3.10.0), each delta
   keeping its own number; a delta that is ready alone goes out as a `DeltaFrame` at once.
4. An answer starts over (another deployment, another worker) only before its first delta: see
   `may_restart`. After it, the consumer gets an error frame, never a second answer.
5. The gateway publishes `chat.cancel.<worker_id>` to the worker that accepted the request when
   the client goes away.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.envelope import Event
from lobe.shared.events.leases import LeaseCharge

CHAT_REQUEST = "chat.request"
CHAT_WORKER_QUEUE = "chat-worker"
# Patterns: concrete subjects come from lobe.shared.catalog.subject(pattern, **tokens).
# `offer` numbers the gateway's hand-overs of one request, so frames from a worker presumed dead
# can never mix into the answer of the worker that took over.
CHAT_REPLY = "chat.reply.<request_id>.<offer>"
CHAT_CANCEL = "chat.cancel.<worker_id>"


def may_restart(started: bool) -> bool:
    """Whether an answer may start over on another deployment or another worker.

    Only before its first delta. After it, the provider has generated (and charges for) output
    that a second answer would leave unrecorded, and a streaming client already shows it: the
    client gets an explicit error, and the usage of what was generated is recorded. One rule for
    the worker's fallbacks and the gateway's re-dispatch.
    """
    return not started


class Caller(BaseModel):
    """Who sent the request, as the gateway authenticated them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=128)
    api_key_id: str | None = Field(default=None, max_length=128)
    plan: str = "free"
    rate_tier: str | None = Field(
        default=None,
        max_length=64,
        description="The gateway's rate-limit tier, when the credential names one (billing's effective "
        "tier, a session's claim); None: the tier the gateway's rate-limit config maps the plan to.",
    )


# The HTTP endpoint a chat request came in on: POST /v1/chat/completions, or POST /v1/responses
# (translated to a chat request at the gateway, its frames rendered as Responses events there).
# The worker checks the model serves it (the routing file's `serves`) and records the usage's kind.
ChatEndpoint = Literal["chat", "responses"]


class ChatRequested(Event):
    """`chat.request`: run this chat completion and stream the answer to `reply_to`."""

    caller: Caller
    body: ChatCompletionRequest
    reply_to: str = Field(min_length=1, description="Subject the worker publishes frames to.")
    attempt: int = Field(default=1, ge=1, description="Dispatch attempt; >1 after a worker died.")
    deadline_ms: int = Field(default=600_000, ge=1, description="Total time budget for the answer.")
    endpoint: ChatEndpoint = Field(
        default="chat",
        description="The endpoint the client called: chat (/v1/chat/completions) or responses "
        "(/v1/responses, which the gateway translates); absent (older gateways): chat.",
    )
    lease: LeaseCharge | None = Field(
        default=None,
        description="The budget lease the gateway admitted it under, and its worst case: the worker "
        "puts it on the usage event, which settles it. None: an exact hold (or no budget check).",
    )


CancelReason = Literal["client_disconnected", "timeout", "shutdown", "abandoned"]


class ChatCancelled(Event):
    """`chat.cancel.<worker_id>`: the gateway gave up on the answer to `request_id`; the worker
    that accepted it stops the provider call."""

    reason: CancelReason = Field(
        default="client_disconnected", description="abandoned: the gateway failed the answer itself."
    )


class _Frame(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)  # as Event

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


class Route(BaseModel):
    """Which deployment answered (or failed last), and after how many provider attempts: what the
    client sees as `x-lobe-deployment`, `x-lobe-provider` and `x-lobe-attempts`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    deployment: str = Field(description="The configured deployment (usage events and metrics use it).")
    provider: str = Field(description="Its provider kind.")
    model: str = Field(description="The public model it serves; differs from the request's after a fallback.")
    attempts: int = Field(
        ge=1, description="Provider calls this answer made, retries and fallbacks included."
    )


class DeltaFrame(_Frame):
    type: Literal["delta"] = "delta"
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    route: Route | None = Field(
        default=None,
        description="On the first delta only: who answers (before the first byte reaches the client).",
    )


class DeltasFrame(_Frame):
    """Deltas the worker had ready together, in one message (3.10.0): one NATS message, one
    decode, where each delta was its own. `seq` is the first delta's; each delta carries its
    own, consecutive, so a reader numbers them as if they had come one by one."""

    type: Literal["deltas"] = "deltas"
    deltas: list[DeltaFrame] = Field(min_length=1)


class HeartbeatFrame(_Frame):
    type: Literal["heartbeat"] = "heartbeat"


# `basis`: what the counts cover, a whole answer ("provider" or "estimated", named after their
# source before 3.4.0) or the part of one generated before a cancel ("partial"). `source`: who
# counted them, whatever they cover (docs/billing.md, "Disconnects").
TokenBasis = Literal["provider", "estimated", "partial"]
TokenSource = Literal["provider", "estimated"]


class TokenUsage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cached_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    basis: TokenBasis = "provider"
    source: TokenSource = Field(
        default="provider",
        description="Who counted: the provider's own usage report, or the gateway's or worker's "
        "estimate. Absent (before 3.4.0): `estimated` when `basis` says so, else `provider`.",
    )

    @model_validator(mode="before")
    @classmethod
    def _source_from_basis(cls, data: Any) -> Any:
        # Events from before 3.4.0 have no `source`: an estimate said so in `basis`.
        if isinstance(data, dict) and "source" not in data and data.get("basis") == "estimated":
            return {**data, "source": "estimated"}
        return data

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageFrame(_Frame):
    type: Literal["usage"] = "usage"
    usage: TokenUsage
    provider: str = Field(default="unknown", description="Provider kind that produced it (for pricing).")
    served_model: str | None = Field(
        default=None,
        max_length=256,
        description="The model the provider was asked for (a deployment's upstream model, after any "
        "fallback); prices are looked up by it. None: the requested model.",
    )
    cost_usd: float | None = Field(default=None, ge=0, description="Set when billing priced it.")


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class DoneFrame(_Frame):
    """Terminal: the answer is complete."""

    type: Literal["done"] = "done"
    finish_reason: FinishReason
    model: str = Field(description="The model that answered, as the provider named it.")
    provider: str
    route: Route | None = Field(default=None, description="Who answered (also for an answer without deltas).")


class ErrorFrame(_Frame):
    """Terminal: the answer failed. `status` is the HTTP status the gateway should use."""

    type: Literal["error"] = "error"
    status: int = Field(ge=400, le=599)
    code: str
    message: str
    retryable: bool = False
    route: Route | None = Field(default=None, description="The deployment tried last, when any was.")
    retry_after_s: float | None = Field(
        default=None, ge=0, description="When trying again may succeed (every deployment limited or open)."
    )


ReplyFrame = Annotated[
    AcceptedFrame | DeltaFrame | DeltasFrame | HeartbeatFrame | UsageFrame | DoneFrame | ErrorFrame,
    Field(discriminator="type"),
]
REPLY_FRAME: TypeAdapter[ReplyFrame] = TypeAdapter(ReplyFrame)
TERMINAL_FRAMES = (DoneFrame, ErrorFrame)


def decode_frame(data: bytes) -> ReplyFrame:
    return REPLY_FRAME.validate_json(data)


CHAT_MODELS = "chat.models"


class Upstream(BaseModel):
    """A provider and the model asked of it: what billing prices usage by."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    provider: str
    model: str


class DeploymentHealth(BaseModel):
    """One deployment of a model as the answering worker sees the fleet now (the console's
    models page): its breaker, the requests in flight across workers, the fleet's TTFT average,
    its per-minute limits and the share of the current window still free."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    provider: str
    model: str
    breaker: str = Field(description="closed, open or half_open.")
    in_flight: int = 0
    ttft_ms: float | None = None
    rpm: int | None = None
    tpm: int | None = None
    headroom: float = Field(
        default=1.0, description="Share of the limits' window still free (1.0: no limit)."
    )


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    owned_by: str = "lobe"
    reaches: list[Upstream] = Field(
        default_factory=list,
        description="Every upstream a request for this model may be served by: its deployments' and, "
        "transitively, those of its fallbacks and context fallback. Billing prices a budget hold at "
        "the dearest of them.",
    )
    deployments: list[DeploymentHealth] = Field(
        default_factory=list, description="The model's own deployments and their health now (3.9.0)."
    )


class ModelList(BaseModel):
    """Reply to `chat.models` (request-reply, any worker answers): the models workers serve."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    models: list[ModelInfo]
