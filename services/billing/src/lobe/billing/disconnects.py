"""What a cancelled request is billed for: the disconnect policy (docs/billing.md, "Disconnects").

A request cancelled mid-answer (the client left, the gateway timed it out or shut down) is billed
per `bill_partial` (what was generated: what providers charge), `bill_full` (as if the answer had
run to its output cap: for a provider that bills the whole answer anyway) or `bill_none`. The
caller's plan decides when it sets a policy (the contract with the user); else the deployment that
served it (what the provider charges us, named in the usage event); else `bill_partial`. The
ledger keeps the counts as generated; the policy sets only what they cost.
"""

from __future__ import annotations

from lobe.billing.plans import PlanBook
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.units import MediaUnits
from lobe.shared.events.usage import DisconnectBilling, UsageRecorded

DEFAULT_DISCONNECT_BILLING: DisconnectBilling = "bill_partial"
NOTHING = {"prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0, "reasoning_tokens": 0}


def disconnect_policy(event: UsageRecorded, plans: PlanBook) -> DisconnectBilling:
    return plans.disconnect_billing(event.plan) or event.disconnect_billing or DEFAULT_DISCONNECT_BILLING


def billed_usage(event: UsageRecorded, plans: PlanBook) -> TokenUsage:
    """The usage to price: the event's own, or, for a cancelled request, what its policy bills."""
    usage = event.usage
    if event.status != "cancelled":
        return usage
    policy = disconnect_policy(event, plans)
    if policy == "bill_none":
        return usage.model_copy(update=NOTHING)
    if policy == "bill_full" and event.max_output_tokens is not None:
        full = max(usage.completion_tokens, event.max_output_tokens)
        return usage.model_copy(update={"completion_tokens": full})
    return usage  # bill_partial; bill_full without a known cap bills what it knows


def billed_units(event: UsageRecorded, plans: PlanBook) -> MediaUnits | None:
    """A media request's units to price: none for a cancelled request billed `bill_none`. (A
    cancelled speech's units are its whole input already: its characters are known up front.)"""
    if event.status == "cancelled" and disconnect_policy(event, plans) == "bill_none":
        return None
    return event.units
