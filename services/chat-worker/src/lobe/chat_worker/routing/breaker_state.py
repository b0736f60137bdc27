"""A deployment's circuit breaker as a value, and its transitions as pure functions.

closed ──N failures within the window──▶ open ──cooldown over, one worker claims the probe──▶
half_open ──probe answers──▶ closed; ──probe fails──▶ open (a new cooldown). A probe whose worker
vanished is claimed again once its deadline passed, so a breaker never stays half-open forever.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from lobe.chat_worker.policies import BreakerPolicy
from lobe.shared.events.routing import BreakerState


@dataclass(frozen=True)
class BreakerRecord:
    state: BreakerState = "closed"
    failures: tuple[float, ...] = ()  # wall-clock times of the failures inside the window
    opened_at: float = 0.0
    probe_until: float = 0.0  # half_open: the probe's deadline
    reason: str | None = None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> BreakerRecord:
        if not data:
            return CLOSED
        try:
            raw = json.loads(data)
            return cls(
                state=raw["state"],
                failures=tuple(raw.get("failures") or ()),
                opened_at=float(raw.get("opened_at") or 0),
                probe_until=float(raw.get("probe_until") or 0),
                reason=raw.get("reason"),
            )
        except (ValueError, KeyError, TypeError):
            return CLOSED  # an unreadable record must not keep a deployment out of service

    def reopens_at(self, policy: BreakerPolicy) -> float:
        return self.opened_at + policy.cooldown_s


CLOSED = BreakerRecord()


def after_failure(
    record: BreakerRecord, now: float, policy: BreakerPolicy, reason: str
) -> BreakerRecord | None:
    """A counted failure of a normal (non-probe) attempt; None when nothing changes."""
    if record.state != "closed" or policy.failures == 0:
        return None
    recent = (*(t for t in record.failures if t > now - policy.window_s), now)
    if len(recent) >= policy.failures:
        return BreakerRecord("open", recent, opened_at=now, reason=reason)
    return replace(record, failures=recent)


def claim_probe(
    record: BreakerRecord, now: float, policy: BreakerPolicy, probe_s: float
) -> BreakerRecord | None:
    """The cooldown is over (or the last probe's deadline passed): this worker sends the probe."""
    due = (record.state == "open" and now >= record.reopens_at(policy)) or (
        record.state == "half_open" and now >= record.probe_until
    )
    return replace(record, state="half_open", probe_until=now + probe_s) if due else None


def probe_abandoned(record: BreakerRecord, now: float) -> BreakerRecord | None:
    """The probe's request went away before the deployment showed anything: the next request may
    probe at once, instead of after the probe's deadline."""
    return replace(record, probe_until=now) if record.state == "half_open" else None


def after_probe(record: BreakerRecord, ok: bool, now: float, reason: str | None) -> BreakerRecord | None:
    if record.state != "half_open":
        return None  # another worker already decided (its probe timed out and was re-claimed)
    if ok:
        return CLOSED
    return BreakerRecord("open", record.failures, opened_at=now, reason=reason)
