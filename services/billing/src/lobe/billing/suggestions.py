"""Cost-optimisation suggestions from a user's usage in one period, read from the ledger.

LobeChat's two, with its names, fields (`type`, `description`, `potentialSavings`) and triggers:
1. model_switch: the user used a model while another model they also used in the period, for the
   same kind of request (chat, embedding, ...), would have cost less for the same tokens. One per
   provider and model that has such an alternative, naming the cheapest: "Switch from X to Y for
   simple tasks". potentialSavings = what X's tokens cost in the ledger minus the same tokens
   (prompt, completion, cached) at Y's rates today.
2. implement_caching: when requests x 0.3 > 10 (34 requests or more in the period), potentialSavings
   = the period's cost x 0.3, LobeChat's estimate of the repeated queries a response cache serves.
Ours, each for what those two cannot see:
3. small_requests: the share of an expensive model's requests that are small (short prompt and
   short answer), which its cheaper sibling (CHEAPER) handles well; savings = those re-priced.
4. cheaper_model: a cheaper sibling the user has not tried, for a model model_switch has no
   alternative for; savings = the same tokens re-priced.
5. prompt_caching: long prompts with almost no cached tokens on a model with a cached rate (the
   provider's prompt cache, not a response cache); savings = half the prompt tokens at the cached
   rate (a conservative guess of what prompt caching reaches on repeated prefixes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from lobe.billing.prices import PriceTable, cost_of
from lobe.billing.report_models import Suggestion, usd
from lobe.shared.events.chat import TokenUsage

# Expensive model -> the cheaper model we would suggest for it.
CHEAPER: dict[str, str] = {
    "gpt-4": "gpt-4o-mini",
    "gpt-4o": "gpt-4o-mini",
    "gpt-4.1": "gpt-4.1-mini",
    "claude-3-opus": "claude-sonnet-4",
    "claude-opus-4": "claude-sonnet-4",
    "claude-3-sonnet": "claude-3-5-haiku",
    "claude-sonnet-4": "claude-haiku-4-5",
    "gemini-2.5-pro": "gemini-2.5-flash",
}
SMALL_PROMPT_TOKENS = 1000
SMALL_COMPLETION_TOKENS = 200
LONG_PROMPT_TOKENS = 1024
CACHED_SHARE_LOW = 0.1
MIN_SAVINGS_USD = Decimal("0.0001")  # our own kinds: below this, advice is noise
# LobeChat's caching rule, `requests * 0.3 > 10`, in exact decimals (as its savings, cost * 0.3).
CACHING_SHARE = Decimal("0.3")
CACHING_ABOVE = 10


def _reprice(prices: PriceTable, provider: str, model: str, usage: TokenUsage) -> Decimal | None:
    rate = prices.rate(provider, model, datetime.now(UTC).date())
    return None if rate is None else cost_of(rate, usage)


def _usage(r: asyncpg.Record) -> TokenUsage:
    return TokenUsage(
        prompt_tokens=r["prompt_tokens"],
        completion_tokens=r["completion_tokens"],
        cached_tokens=r["cached_tokens"],
    )


async def suggestions(pool: asyncpg.Pool, prices: PriceTable, user_id: str, period: str) -> list[Suggestion]:
    models = await pool.fetch(
        """SELECT provider, model, kind, count(*) AS requests, sum(prompt_tokens) AS prompt_tokens,
                  sum(completion_tokens) AS completion_tokens, sum(cached_tokens) AS cached_tokens,
                  sum(cost_usd) AS cost_usd
           FROM usage_ledger WHERE user_id = $1 AND period = $2
           GROUP BY provider, model, kind ORDER BY provider, model, kind""",
        user_id,
        period,
    )
    out: list[Suggestion] = []
    for r in models:
        switch = model_switch(prices, r, models)
        # One model to move to per model: a cheaper sibling only when none the user used is cheaper.
        if switch is not None:
            out.append(switch)
        else:
            out.extend(_cheaper_model(prices, r))
        out.extend(_prompt_caching(prices, r))
    out.extend(implement_caching(models))
    out.extend(await _small_requests(pool, prices, user_id, period))
    return sorted(out, key=lambda s: Decimal(s.potential_savings), reverse=True)


def model_switch(
    prices: PriceTable, used: asyncpg.Record, models: Sequence[asyncpg.Record]
) -> Suggestion | None:
    """LobeChat's model_switch for `used`, against the other models of the user's period."""
    tokens = _usage(used)
    best: tuple[str, Decimal] | None = None
    for other in models:
        if other["model"] == used["model"] or other["kind"] != used["kind"]:
            continue  # an embedding model serves no chat, nor a chat model embeddings
        alt = _reprice(prices, other["provider"], other["model"], tokens)
        if alt is not None and alt < used["cost_usd"] and (best is None or alt < best[1]):
            best = (other["model"], alt)
    if best is None:
        return None
    return Suggestion(
        type="model_switch",
        description=f"Switch from {used['model']} to {best[0]} for simple tasks",
        potential_savings=usd(used["cost_usd"] - best[1]),
    )


def implement_caching(models: Sequence[asyncpg.Record]) -> list[Suggestion]:
    requests = sum(r["requests"] for r in models)
    if not requests * CACHING_SHARE > CACHING_ABOVE:
        return []
    cost = sum((r["cost_usd"] for r in models), Decimal(0))
    return [
        Suggestion(
            type="implement_caching",
            description="Implement response caching for repeated queries",
            potential_savings=usd(cost * CACHING_SHARE),
        )
    ]


def _cheaper_model(prices: PriceTable, r: asyncpg.Record) -> list[Suggestion]:
    cheaper = CHEAPER.get(r["model"])
    alt = _reprice(prices, r["provider"], cheaper, _usage(r)) if cheaper else None
    if cheaper is None or alt is None or r["cost_usd"] - alt < MIN_SAVINGS_USD:
        return []
    return [
        Suggestion(
            type="cheaper_model",
            model=r["model"],
            suggested_model=cheaper,
            requests=r["requests"],
            potential_savings=usd(r["cost_usd"] - alt),
            description=f"{r['model']} cost {usd(r['cost_usd'])} USD this period; "
            f"{cheaper} would have cost {usd(alt)} USD for the same tokens.",
        )
    ]


def _prompt_caching(prices: PriceTable, r: asyncpg.Record) -> list[Suggestion]:
    avg_prompt = r["prompt_tokens"] / max(r["requests"], 1)
    if avg_prompt < LONG_PROMPT_TOKENS or r["cached_tokens"] >= CACHED_SHARE_LOW * r["prompt_tokens"]:
        return []
    usage = _usage(r)
    alt = _reprice(
        prices,
        r["provider"],
        r["model"],
        usage.model_copy(update={"cached_tokens": usage.prompt_tokens // 2}),
    )
    if alt is None or r["cost_usd"] - alt < MIN_SAVINGS_USD:
        return []
    return [
        Suggestion(
            type="prompt_caching",
            model=r["model"],
            requests=r["requests"],
            potential_savings=usd(r["cost_usd"] - alt),
            description=f"Prompts to {r['model']} average {avg_prompt:.0f} tokens with "
            f"{r['cached_tokens'] / max(r['prompt_tokens'], 1):.0%} cached: put the stable part first "
            "so the provider's prompt cache can serve it.",
        )
    ]


async def _small_requests(
    pool: asyncpg.Pool, prices: PriceTable, user_id: str, period: str
) -> list[Suggestion]:
    rows = await pool.fetch(
        """SELECT provider, model, count(*) AS total,
                  count(*) FILTER (WHERE prompt_tokens <= $3 AND completion_tokens <= $4) AS small,
                  coalesce(sum(prompt_tokens) FILTER (WHERE prompt_tokens <= $3 AND completion_tokens <= $4), 0) AS sp,
                  coalesce(sum(completion_tokens) FILTER (WHERE prompt_tokens <= $3 AND completion_tokens <= $4), 0)
                      AS sc,
                  coalesce(sum(cost_usd) FILTER (WHERE prompt_tokens <= $3 AND completion_tokens <= $4), 0) AS scost
           FROM usage_ledger WHERE user_id = $1 AND period = $2 AND model = ANY($5::text[])
           GROUP BY provider, model""",
        user_id,
        period,
        SMALL_PROMPT_TOKENS,
        SMALL_COMPLETION_TOKENS,
        list(CHEAPER),
    )
    out: list[Suggestion] = []
    for r in rows:
        if not r["small"]:
            continue
        cheaper = CHEAPER[r["model"]]
        alt = _reprice(
            prices, r["provider"], cheaper, TokenUsage(prompt_tokens=r["sp"], completion_tokens=r["sc"])
        )
        if alt is None or r["scost"] - alt < MIN_SAVINGS_USD:
            continue
        share = r["small"] / r["total"]
        out.append(
            Suggestion(
                type="small_requests",
                model=r["model"],
                suggested_model=cheaper,
                requests=r["small"],
                share=round(share, 4),
                potential_savings=usd(r["scost"] - alt),
                description=f"{share:.0%} of requests to {r['model']} are small (<= {SMALL_PROMPT_TOKENS} prompt "
                f"and <= {SMALL_COMPLETION_TOKENS} output tokens); route them to {cheaper}.",
            )
        )
    return out
