"""Embeddings domain: one request, one reply (core NATS request-reply, at-most-once).

The gateway asks `embeddings.request` of the `chat-worker` queue group; the worker that takes it
routes it like a chat request (deployments, strategies, retries, fallbacks, breakers), calls the
provider, records the usage (`usage.recorded`, kind `embedding`) and only then answers, with the
vectors or an error. No reply in time means no worker answered: the gateway says 503 or 504 and
releases the budget hold (a worker that still answers later has its usage recorded all the same).

Vectors travel as OpenAI's base64 form (the little-endian float32 bytes, base64-encoded): exact
for the float32 values every provider returns, and a third of the size of JSON numbers. The whole
reply is one NATS message, so a batch's vectors must fit its max_payload (1 MiB by default: about
190,000 dimensions in all, e.g. 120 inputs of 1,536); a larger answer is refused with a 413.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import Caller, Route, TokenUsage
from lobe.shared.events.envelope import Event
from lobe.shared.events.leases import LeaseCharge

EMBEDDINGS_REQUEST = "embeddings.request"


class EmbeddingsRequested(Event):
    """`embeddings.request`: embed these inputs; answered with an EmbeddingsAnswer."""

    caller: Caller
    body: EmbeddingsRequest
    deadline_ms: int = Field(default=60_000, ge=1, description="Total time budget for the answer.")
    lease: LeaseCharge | None = Field(
        default=None, description="The budget lease it was admitted under, as on `chat.request`."
    )


class EmbeddingsFailure(BaseModel):
    """Why there are no vectors. `status` is the HTTP status the gateway answers with."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: int = Field(ge=400, le=599)
    code: str
    message: str
    retry_after_s: float | None = Field(default=None, ge=0)


class EmbeddingsAnswer(BaseModel):
    """Reply to `embeddings.request`: the vectors (one per input, in input order) and their usage,
    or `error`. The usage event is recorded before the reply is sent."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    request_id: str
    vectors: list[str] = Field(
        default_factory=list, description="Per input, its little-endian float32 vector, base64-encoded."
    )
    model: str = Field(default="", description="The model that answered, as the provider named it.")
    usage: TokenUsage | None = None
    served_model: str | None = Field(
        default=None,
        max_length=256,
        description="The model the provider was asked for (billing prices by it).",
    )
    route: Route | None = Field(default=None, description="Who answered (or failed last).")
    error: EmbeddingsFailure | None = None
