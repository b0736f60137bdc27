"""Pricing math: exact to the micro-dollar, dated prices, the unknown-model policy, bad YAML."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lobe.billing.prices import PriceTable, load_prices
from lobe.shared.config_file import ConfigError
from lobe.shared.events.chat import TokenUsage


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_prices()


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def test_seed_prices_per_1k_are_converted_to_per_million_exactly(table: PriceTable) -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)
    assert table.price("openai", "gpt-4", at("2026-01-01"), usage).cost_usd == Decimal("0.09")
    assert table.price("anthropic", "claude-3-opus", at("2026-01-01"), usage).cost_usd == Decimal("0.09")
    assert table.price("anthropic", "claude-3-sonnet", at("2026-01-01"), usage).cost_usd == Decimal("0.018")


def test_cached_prompt_tokens_use_the_cached_rate_to_the_micro_dollar(table: PriceTable) -> None:
    # gpt-4o-mini: 0.15 input, 0.075 cached, 0.60 output per million.
    usage = TokenUsage(prompt_tokens=1001, completion_tokens=333, cached_tokens=501)
    priced = table.price("openai", "gpt-4o-mini", at("2026-01-01"), usage)
    assert priced.cost_usd == Decimal("0.000312375")  # 500*0.15 + 501*0.075 + 333*0.6 micro-dollars
    assert priced.priced is True


def test_price_change_applies_from_its_effective_date_only(table: PriceTable) -> None:
    usage = TokenUsage(prompt_tokens=1_000_000, completion_tokens=0)
    assert table.price("openai", "gpt-4o", at("2024-09-30T23:59:59"), usage).cost_usd == Decimal("5")
    assert table.price("openai", "gpt-4o", at("2024-10-01"), usage).cost_usd == Decimal("2.5")
    # Older than the first entry: the first known price, not zero.
    assert table.price("openai", "gpt-4o", at("2020-01-01"), usage).cost_usd == Decimal("5")


def test_unknown_model_is_priced_by_the_default_rate_never_zero(table: PriceTable) -> None:
    priced = table.price(
        "acme", "acme-9", at("2026-01-01"), TokenUsage(prompt_tokens=1000, completion_tokens=1000)
    )
    assert priced.priced is False
    assert priced.cost_usd == Decimal("0.09")  # default 15 / 75 per million


def test_model_known_under_another_provider_is_priced_as_that_model(table: PriceTable) -> None:
    usage = TokenUsage(prompt_tokens=1_000_000, completion_tokens=0)
    assert table.price("azure_openai", "gpt-4o-mini", at("2026-01-01"), usage).cost_usd == Decimal("0.15")


def test_invalid_price_file_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text(
        "default: {input: 1, output: 1}\n"
        "models:\n  - provider: openai\n    model: x\n    prices:\n      - {effective_from: 2024-01-01, input: -1, output: 1}\n"
    )
    with pytest.raises(ConfigError, match=r"models\.0\.prices\.0\.input"):
        load_prices(bad)


def test_prices_file_env_var_overrides_the_bundled_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = tmp_path / "p.yaml"
    custom.write_text("default: {input: 1, output: 2}\nmodels: []\n")
    monkeypatch.setenv("PRICES_FILE", str(custom))
    table = load_prices()
    assert (
        table.price("mock", "mock", at("2026-01-01"), TokenUsage(prompt_tokens=1, completion_tokens=0)).priced
        is False
    )


def test_a_cache_hit_is_free_by_default_and_at_the_configured_fraction_otherwise(
    table: PriceTable, tmp_path: Path
) -> None:
    usage = TokenUsage(prompt_tokens=1000, completion_tokens=1000)
    assert table.price("openai", "gpt-4", at("2026-01-01"), usage, cache_hit=True).cost_usd == 0
    discounted = tmp_path / "p.yaml"
    discounted.write_text("default: {input: 15, output: 75}\ncache_hit_factor: 0.1\nmodels: []\n")
    priced = load_prices(discounted).price("acme", "acme-9", at("2026-01-01"), usage, cache_hit=True)
    assert (priced.cost_usd, priced.priced) == (Decimal("0.009"), False)  # a tenth of 0.09
