"""The disconnect policy (docs/billing.md, "Disconnects"): what a cancelled request is billed for,
whose setting decides (the plan's, else the deployment's, else bill_partial), and that it reaches
the ledger's cost while the ledger keeps the counts as generated."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lobe.billing.ledger import price_event
from lobe.billing.plans import PlanBook, load_plans
from lobe.billing.prices import load_prices
from lobe.billing.service import BillingService
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.units import MediaUnits
from lobe.shared.events.usage import DisconnectBilling, UsageRecorded

from .support import fetchval, make_settings, publish_usage, usage_event, wait_for_ledger

PRICES = load_prices()
CAP = 4096
GENERATED = 50
PLANS_YAML = """
default_plan: free
plans:
  free: {tokens: null, cost_usd: null, requests: null, rate_tier: free}
  generous: {tokens: null, cost_usd: null, requests: null, rate_tier: free, disconnect_billing: bill_none}
  strict: {tokens: null, cost_usd: null, requests: null, rate_tier: free, disconnect_billing: bill_full}
"""


@pytest.fixture
def plans_file(tmp_path: Path) -> Path:
    path = tmp_path / "plans.yaml"
    path.write_text(PLANS_YAML)
    return path


def cancelled(
    request_id: str = "r1",
    plan: str | None = "free",
    deployment_policy: DisconnectBilling | None = None,
    cap: int | None = CAP,
    status: str = "cancelled",
) -> UsageRecorded:
    return usage_event(request_id, model="gpt-4o", provider="openai", completion=GENERATED).model_copy(
        update={
            "status": status,
            "plan": plan,
            "max_output_tokens": cap,
            "disconnect_billing": deployment_policy,
        }
    )


def cost(event: UsageRecorded, plans: PlanBook) -> Decimal:
    return price_event(event, PRICES, plans).cost_usd


def cost_of_completion(tokens: int) -> Decimal:
    usage = TokenUsage(prompt_tokens=100, completion_tokens=tokens)
    return PRICES.price("openai", "gpt-4o", cancelled().occurred_at, usage).cost_usd


@pytest.mark.parametrize(
    ("plan", "deployment_policy", "billed_completion"),
    [
        ("free", None, GENERATED),  # neither says: what providers do, what was generated
        ("free", "bill_full", CAP),  # the deployment's, the plan setting none
        ("free", "bill_none", 0),
        ("generous", "bill_full", 0),  # the plan's comes first
        ("strict", "bill_none", CAP),
        ("strict", None, CAP),
        (
            "no-such-plan",
            "bill_full",
            CAP,
        ),  # a removed plan: the default plan's (none), then the deployment's
        (None, None, GENERATED),  # an event from before 3.4.0
    ],
)
def test_a_cancelled_request_is_priced_per_the_plan_else_the_deployment_else_partial(
    plans_file: Path, plan: str | None, deployment_policy: DisconnectBilling | None, billed_completion: int
) -> None:
    plans = load_plans(plans_file)
    event = cancelled(plan=plan, deployment_policy=deployment_policy)
    expected = Decimal(0) if billed_completion == 0 else cost_of_completion(billed_completion)
    assert cost(event, plans) == expected


def test_bill_none_bills_no_prompt_either(plans_file: Path) -> None:
    assert cost(cancelled(plan="generous"), load_plans(plans_file)) == 0


def test_bill_full_without_a_known_output_cap_bills_what_was_generated(plans_file: Path) -> None:
    event = cancelled(plan="strict", cap=None)
    assert cost(event, load_plans(plans_file)) == cost_of_completion(GENERATED)


def test_bill_full_never_bills_less_than_was_generated(plans_file: Path) -> None:
    event = cancelled(plan="strict", cap=10)  # the provider ran past the cap it was given
    assert cost(event, load_plans(plans_file)) == cost_of_completion(GENERATED)


@pytest.mark.parametrize("status", ["ok", "error"])
def test_the_policy_applies_to_cancelled_requests_only(plans_file: Path, status: str) -> None:
    event = cancelled(plan="generous", status=status)
    assert cost(event, load_plans(plans_file)) == cost_of_completion(GENERATED)


def test_an_event_without_source_reads_it_from_basis() -> None:
    old = {"prompt_tokens": 1, "completion_tokens": 2}
    assert TokenUsage.model_validate({**old, "basis": "estimated"}).source == "estimated"
    assert TokenUsage.model_validate({**old, "basis": "partial"}).source == "provider"
    assert TokenUsage.model_validate({**old, "basis": "partial", "source": "estimated"}).basis == "partial"


async def test_the_ledger_keeps_the_generated_counts_at_the_policys_cost(
    nats_url: str, billing_db: str, plans_file: Path
) -> None:
    settings = make_settings(nats_url, billing_db, plans_file=plans_file)
    async with BillingService(settings):
        await publish_usage(nats_url, [cancelled("kept", plan="free"), cancelled("waived", plan="generous")])
        await wait_for_ledger(billing_db, 2)
    row = "SELECT {} FROM usage_ledger WHERE request_id = $1"
    assert await fetchval(billing_db, row.format("cost_usd"), "kept") == cost_of_completion(GENERATED)
    assert await fetchval(billing_db, row.format("cost_usd"), "waived") == 0
    assert await fetchval(billing_db, row.format("completion_tokens"), "waived") == GENERATED


def cancelled_speech(plan: str) -> UsageRecorded:
    units = MediaUnits(characters=1000)  # the whole input: a speech's units are known up front
    return cancelled(plan=plan).model_copy(
        update={"kind": "speech", "model": "tts-1", "served_model": "tts-1", "units": units}
    )


def test_a_cancelled_media_request_billed_bill_none_costs_nothing_for_its_units(plans_file: Path) -> None:
    plans = load_plans(plans_file)
    assert cost(cancelled_speech("free"), plans) > 0  # bill_partial: the characters it was asked for
    assert cost(cancelled_speech("generous"), plans) == 0
