"""Usage domain: the durable record of what each request consumed (chat, embeddings, ...).

`usage.recorded` goes to the JetStream stream USAGE with `Nats-Msg-Id` = request id, so a
retried publish is dropped by the stream's duplicate window and billing's unique key drops any
that slip past it. Exactly one per request, whatever the outcome: the worker's, or, when the
worker was lost mid-answer, the gateway's on `usage.reported` (its own subject, so the gateway's
NATS user cannot publish `usage.recorded`; billing keeps one of the two per request).
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import Caller, ChatEndpoint, TokenUsage
from lobe.shared.events.envelope import Event
from lobe.shared.events.leases import LeaseCharge
from lobe.shared.events.units import MediaUnits
from lobe.shared.media_schema import ImagesRequest, MediaRequest, SpeechRequest, TranscriptionRequest

USAGE_RECORDED = "usage.recorded"
USAGE_REPORTED = "usage.reported"
USAGE_DEAD_LETTER = "usage.dead"
# Every subject carrying a UsageRecorded: what billing and metrics consume.
USAGE_SUBJECTS = (USAGE_RECORDED, USAGE_REPORTED)
# How often a usage event's publish is tried, by the worker and by the gateway alike: JetStream may
# be away for a while (a reconnect; a stream electing a new leader after a node is lost, up to
# ~10 s in tests/faults/test_nats_cluster_node_loss.py), and usage is never given up on lightly.
# 30 attempts wait ~27 s when each is refused at once, longer when each times out
# (lobe.shared.bus.facts), inside the USAGE stream's duplicate window. The worker's terminal frame
# waits too (heartbeats keep the gateway patient); the gateway's publishes run after its answer.
USAGE_PUBLISH_ATTEMPTS = 30

RequestStatus = Literal["ok", "error", "cancelled", "cache_hit"]
# The endpoint a usage is for, which says the unit it is priced by: chat and response by input and
# output tokens, embedding by input tokens (`usage.prompt_tokens`; completion_tokens is 0), image
# per image of its size and quality, speech per character, transcription per second (`units`).
UsageKind = Literal["chat", "embedding", "image", "speech", "transcription", "response"]
# What a cancelled request (the client left, a timeout, a shutdown) is billed for: what was
# generated, the whole answer as far as its output cap, or nothing (docs/billing.md, "Disconnects").
DisconnectBilling = Literal["bill_partial", "bill_full", "bill_none"]


def chat_usage_kind(endpoint: ChatEndpoint) -> UsageKind:
    """The usage kind of a chat request that came in on `endpoint` (both priced alike)."""
    return "response" if endpoint == "responses" else "chat"


class UsageRecorded(Event):
    """`usage.recorded`: a request ended; this is what it used."""

    kind: UsageKind = Field(
        default="chat", description="The endpoint the usage is for; absent (older producers): chat."
    )
    units: MediaUnits | None = Field(
        default=None, description="What a media request is priced by (image, speech, transcription)."
    )
    user_id: str = Field(min_length=1, max_length=128)
    api_key_id: str | None = Field(default=None, max_length=128)
    provider: str = Field(min_length=1, max_length=64)
    deployment: str = Field(min_length=1, max_length=128, description="Configured upstream used.")
    model: str = Field(min_length=1, max_length=256, description="Model as the client asked for it.")
    usage: TokenUsage
    status: RequestStatus
    error_code: str | None = None
    ttft_ms: float | None = Field(default=None, ge=0, description="Time to first token.")
    duration_ms: float = Field(ge=0)
    stream: bool = False
    attempts: int | None = Field(
        default=None, ge=0, description="Provider calls made for it, retries and fallbacks included."
    )
    served_model: str | None = Field(
        default=None,
        max_length=256,
        description="The model the provider was asked for (a deployment's upstream model, after any "
        "fallback); billing prices by it. None: `model`.",
    )

    plan: str | None = Field(default=None, description="The caller's plan when the request ran.")
    max_output_tokens: int | None = Field(
        default=None, ge=1, description="The output cap the request ran with (the budget hold's); None: none."
    )
    disconnect_billing: DisconnectBilling | None = Field(
        default=None,
        description="A cancelled request's billing as its deployment configures it; the plan's, "
        "when it sets one, comes first (billing). None: neither says.",
    )
    lease: LeaseCharge | None = Field(
        default=None,
        description="The budget lease the request was admitted under and its worst case, which "
        "billing takes out of the lease when it writes this usage. None: an exact hold (or none).",
    )

    @property
    def priced_model(self) -> str:
        return self.served_model or self.model


UsageBody = ChatCompletionRequest | EmbeddingsRequest | MediaRequest
_KINDS: dict[type, UsageKind] = {
    EmbeddingsRequest: "embedding",
    ImagesRequest: "image",
    SpeechRequest: "speech",
    TranscriptionRequest: "transcription",
}


def kind_of(body: UsageBody) -> UsageKind:
    return _KINDS.get(type(body), "chat")


def usage_event(
    request_id: str,
    caller: Caller,
    body: UsageBody,
    started_at: float,
    *,
    provider: str,
    deployment: str,
    usage: TokenUsage,
    status: RequestStatus,
    error_code: str | None,
    correlation_id: str | None = None,
    ttft_ms: float | None = None,
    attempts: int | None = None,
    served_model: str | None = None,
    units: MediaUnits | None = None,
    disconnect_billing: DisconnectBilling | None = None,
    kind: UsageKind | None = None,
    lease: LeaseCharge | None = None,
) -> UsageRecorded:
    """The one way to build a request's usage event, the worker's and the gateway's alike.
    `started_at`: time.monotonic() when the request arrived (the duration runs from it). `kind`:
    None is the body's (embedding, image, speech, transcription or chat); a Responses request's
    chat body says `response`."""
    if kind is None:
        kind = kind_of(body)
    return UsageRecorded(
        kind=kind,
        units=units,
        request_id=request_id,
        correlation_id=correlation_id,
        user_id=caller.user_id,
        api_key_id=caller.api_key_id,
        provider=provider,
        deployment=deployment,
        model=body.model,
        usage=usage,
        status=status,
        error_code=error_code,
        ttft_ms=ttft_ms,
        duration_ms=(time.monotonic() - started_at) * 1000,
        stream=isinstance(body, ChatCompletionRequest) and body.stream,
        attempts=attempts,
        served_model=served_model,
        plan=caller.plan,
        max_output_tokens=body.output_token_limit if isinstance(body, ChatCompletionRequest) else None,
        disconnect_billing=disconnect_billing,
        lease=lease,
    )


def gateway_may_report(event: UsageRecorded) -> bool:
    """What the gateway records on `usage.reported`: a lost worker's partial usage, or a cached
    answer's (no worker ran). Billing dead-letters anything else arriving there, so a gateway's
    credentials cannot bill an ordinary answer."""
    lost_worker = event.status == "error" and event.error_code == "worker_lost"
    return lost_worker or event.status == "cache_hit"


class UsageDeadLetter(BaseModel):
    """`usage.dead`: a usage message billing could not process, kept verbatim for an operator.

    No envelope: the original may be too malformed to have a request id.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    reason: str = Field(description="Why billing could not process it.")
    subject: str = Field(description="The subject it arrived on.")
    stream_sequence: int | None = Field(default=None, ge=1, description="Its sequence in USAGE.")
    payload: str = Field(description="The original body, decoded as UTF-8 with replacement.")
