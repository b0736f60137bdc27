"""Budget leases (docs/billing.md, "Budget leases"): a gateway admits a user's chat and
embeddings requests against a part of their remaining budget that billing set aside, instead of
one hold per request. One command, `billing.budget.lease`, batched both ways (wants and returns in
one ask); each request admitted under a lease carries its charge to the usage event that settles it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lobe.shared.events.envelope import Event

# Money on the bus as a decimal string: exact, where a float would round a worst case billing
# must take back from the lease to the last digit. The ledger's columns: numeric(24, 10).
Usd = Annotated[Decimal, Field(ge=0, max_digits=24, decimal_places=10)]
PerMillion = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class LeaseCharge(BaseModel):
    """What a request admitted under a lease takes from it: its worst case, exactly as billing
    would have held it. On `chat.request` and `embeddings.request` (the worker copies it to its
    usage event) and on the gateway's own `usage.reported`; billing takes it out of the lease when
    the usage is written, and puts the real cost (at most this) in its place."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lease_id: str = Field(min_length=1, max_length=128)
    usd: Usd
    tokens: int = Field(ge=0, le=2**53)


class LeaseWant(BaseModel):
    """A lease for this user and model, sized in requests like this one (its token ceiling and
    output cap, priced at the model's dearest upstream)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=256)
    prompt_tokens_estimate: int = Field(ge=0)
    max_output_tokens: int = Field(ge=1)


class LeaseReturn(BaseModel):
    """A lease given back: the part of it the gateway admitted no request under, freed at once.
    What it did admit stays held until each request's usage is written. Additive: a request given
    back after its lease was returned goes back in another return."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lease_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    usd: Usd
    tokens: int = Field(ge=0, le=2**53)
    requests: int = Field(ge=0, le=2**31)


class LeaseAsk(Event):
    """`billing.budget.lease`: the wants and returns one gateway gathered since its last ask."""

    gateway_id: str = Field(min_length=1, max_length=128)
    wants: list[LeaseWant] = Field(default_factory=list, max_length=1000)
    returns: list[LeaseReturn] = Field(default_factory=list, max_length=1000)


class LeaseRate(BaseModel):
    """US dollars per million tokens."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    input: PerMillion
    output: PerMillion
    cached_input: PerMillion | None = None


class UpstreamPrice(LeaseRate):
    """What the ledger will price an upstream's usage at today (the table's default rate for an
    unpriced one): the gateway prices the final chunk with it, without a quote."""

    provider: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=256)


class LeaseGrant(BaseModel):
    """A lease: admit this user's requests for `model` while their worst cases, summed, fit in
    `requests`, `tokens` and `usd`, until `admit_until`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lease_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    model: str = Field(min_length=1, max_length=256)
    requests: int = Field(ge=1)
    tokens: int = Field(ge=0)
    usd: Usd
    admit_until: datetime
    hold_rate: LeaseRate = Field(description="The dearest input and output price the model reaches.")
    prices: list[UpstreamPrice] = Field(default_factory=list)
    cache_hit_factor: Decimal = Field(ge=0, le=1, max_digits=5, decimal_places=4)


class LeaseGrants(Event):
    """Reply to LeaseAsk: one entry per want, in order; None: no lease (the exact hold applies)."""

    grants: list[LeaseGrant | None]
