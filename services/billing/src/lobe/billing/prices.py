"""The price table: load and validate the operator's YAML, price a usage event exactly.

Money is Decimal end to end (NUMERIC in PostgreSQL); a float never touches a cost.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lobe.shared.config_file import exact_decimal, load_yaml
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.units import MediaUnits
from lobe.shared.token_cost import COST_PRECISION, COST_QUANTUM, MILLION, token_cost

DEFAULT_PRICES_FILE = Path(__file__).parent / "config" / "prices.yaml"


Price = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=4)]


class Rate(BaseModel):
    """US dollars per million tokens; a media model's per unit too (docs/media.md): per image by
    quality then size, per million characters of speech input, per minute of transcribed audio."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Price
    output: Price
    cached_input: Price | None = None
    per_image: dict[str, dict[str, Price]] | None = None
    per_million_characters: Price | None = None
    per_minute: Price | None = None

    @field_validator("input", "output", "cached_input", "per_million_characters", "per_minute", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        return exact_decimal(value)

    @field_validator("per_image", mode="before")
    @classmethod
    def _coerce_images(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {
            q: {s: exact_decimal(p) for s, p in sizes.items()} if isinstance(sizes, dict) else sizes
            for q, sizes in value.items()
        }

    def image_price(self, size: str | None, quality: str | None) -> Decimal:
        """This size and quality's price, or the dearest image price when the table lists it not
        (an upper bound, never free); 0 when the rate prices no images."""
        table = self.per_image or {}
        exact = table.get(quality or "", {}).get(size or "")
        if exact is not None:
            return exact
        return max((p for sizes in table.values() for p in sizes.values()), default=Decimal(0))

    def unit_cost(self, units: MediaUnits) -> Decimal:
        """The units' cost (exact: prices have <= 4 decimals, seconds are priced per minute)."""
        with localcontext() as exact:
            exact.prec = COST_PRECISION
            cost = units.images * self.image_price(units.image_size, units.image_quality)
            cost += units.characters * (self.per_million_characters or 0) / MILLION
            cost += Decimal(str(units.audio_seconds)) * (self.per_minute or 0) / 60
            return cost.quantize(COST_QUANTUM)

    @property
    def prices_units(self) -> bool:
        return (
            self.per_image is not None
            or self.per_million_characters is not None
            or self.per_minute is not None
        )

    @property
    def cached(self) -> Decimal:
        return self.input if self.cached_input is None else self.cached_input


class DatedRate(Rate):
    effective_from: date


class ModelPrices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    prices: list[DatedRate] = Field(min_length=1)

    @model_validator(mode="after")
    def _dates_unique(self) -> ModelPrices:
        dates = [p.effective_from for p in self.prices]
        if len(set(dates)) != len(dates):
            raise ValueError(f"{self.provider}/{self.model}: two prices share an effective_from date")
        return self


class PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: Rate
    # An answer the gateway served from its response cache (no provider was called) costs this
    # fraction of the same usage live: 0 = free, 0.1 = a 90 % discount, 1 = full price.
    cache_hit_factor: Decimal = Field(default=Decimal(0), ge=0, le=1, decimal_places=4)
    models: list[ModelPrices]

    @field_validator("cache_hit_factor", mode="before")
    @classmethod
    def _exact(cls, value: Any) -> Any:
        return exact_decimal(value)

    @model_validator(mode="after")
    def _models_unique(self) -> PriceFile:
        seen: set[tuple[str, str]] = set()
        for m in self.models:
            key = (m.provider, m.model)
            if key in seen:
                raise ValueError(f"{m.provider}/{m.model} is listed twice")
            seen.add(key)
        return self


@dataclass(frozen=True)
class Priced:
    cost_usd: Decimal
    priced: bool  # False: no price known, the default rate was used
    effective_from: date | None


def cost_of(rate: Rate, usage: TokenUsage) -> Decimal:
    """Exact cost (lobe.shared.token_cost: the gateway prices under a lease with the same)."""
    return token_cost(
        usage.prompt_tokens,
        usage.completion_tokens,
        rate.input,
        rate.output,
        usage.cached_tokens,
        rate.cached,
    )


def _effective_from(rate: DatedRate) -> date:
    return rate.effective_from


class PriceTable:
    """Lookup by (provider, model) and date; immutable after load."""

    def __init__(self, spec: PriceFile) -> None:
        self.spec = spec
        self.default = spec.default
        self._exact: dict[tuple[str, str], list[DatedRate]] = {}
        self._by_model: dict[str, list[DatedRate]] = {}
        for m in spec.models:
            rates = sorted(m.prices, key=lambda p: p.effective_from)
            self._exact[(m.provider, m.model)] = rates
            self._by_model.setdefault(m.model, rates)

    def rate(self, provider: str, model: str, when: date) -> DatedRate | None:
        rates = self._exact.get((provider, model)) or self._by_model.get(model)
        if not rates:
            return None
        # key=: no list of dates built per call (this runs for every usage event).
        i = bisect.bisect_right(rates, when, key=_effective_from)
        # Before the first entry: the first price is the best knowledge of that model's price.
        return rates[max(i - 1, 0)]

    def price(
        self,
        provider: str,
        model: str,
        occurred_at: datetime,
        usage: TokenUsage,
        cache_hit: bool = False,
        units: MediaUnits | None = None,
    ) -> Priced:
        """The cost of `usage` (and a media request's `units`); a cache hit (no provider call) at
        the table's cache_hit_factor."""
        rate = self.rate(provider, model, occurred_at.date())
        cost = cost_of(rate or self.default, usage)
        if units is not None:
            cost += (rate if rate is not None and rate.prices_units else self.default).unit_cost(units)
        if cache_hit:
            cost = (cost * self.spec.cache_hit_factor).quantize(COST_QUANTUM)
        if rate is None:
            return Priced(cost, priced=False, effective_from=None)
        return Priced(cost, priced=True, effective_from=rate.effective_from)

    def rows(self) -> list[tuple[str, str, date, Decimal, Decimal, Decimal]]:
        """The table as rows for the `prices` mirror in PostgreSQL."""
        return [
            (m.provider, m.model, p.effective_from, p.input, p.output, p.cached)
            for m in self.spec.models
            for p in m.prices
        ]


def load_prices(path: Path | str | None = None) -> PriceTable:
    """Load PRICES_FILE (or the bundled table); a bad file raises ConfigError naming the field."""
    return PriceTable(load_yaml(PriceFile, path, "PRICES_FILE", DEFAULT_PRICES_FILE))
