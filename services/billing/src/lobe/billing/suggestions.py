"""Cost-optimisation suggestions from a user's real usage in a period.

Rules (the seed's two, plus one from the ledger's per-request data):
1. cheaper_model: a model with a cheaper sibling is in use; savings = the same tokens re-priced.
2. caching: long prompts with almost no cached tokens; savings = half the prompt tokens at the
   cached rate (a conservative guess of what prompt caching reaches on repeated prefixes).
3. small_requests: the share of an expensive model's requests that are small (short prompt and
   short answer), which a cheaper model handles well; savings = those requests re-priced.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from lobe.billing.prices import PriceTable, cost_of
from lobe.billing.reports import money
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
MIN_SAVINGS_USD = Decimal("0.0001")


def _reprice(prices: PriceTable, provider: str, model: str, usage: TokenUsage) -> Decimal | None:
    rate = prices.rate(provider, model, datetime.now(UTC).date())
    return None if rate is None else cost_of(rate, usage)


async def suggestions(
    pool: asyncpg.Pool, prices: PriceTable, user_id: str, period: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rollups = await pool.fetch(
        "SELECT provider, model, requests, prompt_tokens, completion_tokens, cached_tokens, cost_usd "
        "FROM usage_rollups WHERE user_id = $1 AND period = $2",
        user_id,
        period,
    )
    for r in rollups:
        usage = TokenUsage(
            prompt_tokens=r["prompt_tokens"],
            completion_tokens=r["completion_tokens"],
            cached_tokens=r["cached_tokens"],
        )
        cheaper = CHEAPER.get(r["model"])
        if cheaper:
            alt = _reprice(prices, r["provider"], cheaper, usage)
            if alt is not None and r["cost_usd"] - alt >= MIN_SAVINGS_USD:
                out.append(
                    {
                        "type": "cheaper_model",
                        "model": r["model"],
                        "suggested_model": cheaper,
                        "requests": r["requests"],
                        "estimated_savings_usd": money(r["cost_usd"] - alt),
                        "message": f"{r['model']} cost {money(r['cost_usd'])} USD this period; "
                        f"{cheaper} would have cost {money(alt)} USD for the same tokens.",
                    }
                )
        avg_prompt = r["prompt_tokens"] / max(r["requests"], 1)
        if avg_prompt >= LONG_PROMPT_TOKENS and r["cached_tokens"] < CACHED_SHARE_LOW * r["prompt_tokens"]:
            half_cached = usage.model_copy(update={"cached_tokens": usage.prompt_tokens // 2})
            alt = _reprice(prices, r["provider"], r["model"], half_cached)
            if alt is not None and r["cost_usd"] - alt >= MIN_SAVINGS_USD:
                out.append(
                    {
                        "type": "caching",
                        "model": r["model"],
                        "requests": r["requests"],
                        "estimated_savings_usd": money(r["cost_usd"] - alt),
                        "message": f"Prompts to {r['model']} average {avg_prompt:.0f} tokens with "
                        f"{r['cached_tokens'] / max(r['prompt_tokens'], 1):.0%} cached: put the stable part first "
                        "so the provider's prompt cache can serve it.",
                    }
                )
    out.extend(await _small_requests(pool, prices, user_id, period))
    return sorted(out, key=lambda s: Decimal(s["estimated_savings_usd"]), reverse=True)


async def _small_requests(
    pool: asyncpg.Pool, prices: PriceTable, user_id: str, period: str
) -> list[dict[str, Any]]:
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
    out: list[dict[str, Any]] = []
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
            {
                "type": "small_requests",
                "model": r["model"],
                "suggested_model": cheaper,
                "requests": r["small"],
                "share": round(share, 4),
                "estimated_savings_usd": money(r["scost"] - alt),
                "message": f"{share:.0%} of requests to {r['model']} are small (<= {SMALL_PROMPT_TOKENS} prompt and "
                f"<= {SMALL_COMPLETION_TOKENS} output tokens); route them to {cheaper}.",
            }
        )
    return out
