"""The breaker's transitions as pure functions of its record and the time."""

from __future__ import annotations

from lobe.chat_worker.policies import BreakerPolicy
from lobe.chat_worker.routing.breaker_state import (
    CLOSED,
    BreakerRecord,
    after_failure,
    after_probe,
    claim_probe,
    probe_abandoned,
)

POLICY = BreakerPolicy(failures=3, window_s=10, cooldown_s=5)


def test_it_opens_at_the_nth_failure_within_the_window_only() -> None:
    record = CLOSED
    for t in (0.0, 11.0, 12.0):  # the first falls out of the window before the third
        changed = after_failure(record, t, POLICY, "server_error")
        assert changed is not None
        record = changed
    assert record.state == "closed"
    assert record.failures == (11.0, 12.0)
    opened = after_failure(record, 13.0, POLICY, "server_error")
    assert opened is not None
    assert (opened.state, opened.opened_at, opened.reason) == ("open", 13.0, "server_error")


def test_an_open_breaker_lets_one_probe_claim_after_the_cooldown_and_no_sooner() -> None:
    opened = BreakerRecord("open", (1.0, 2.0, 3.0), opened_at=3.0)
    assert claim_probe(opened, 7.9, POLICY, probe_s=2) is None
    claimed = claim_probe(opened, 8.0, POLICY, probe_s=2)
    assert claimed is not None
    assert (claimed.state, claimed.probe_until) == ("half_open", 10.0)
    assert claim_probe(claimed, 9.0, POLICY, probe_s=2) is None  # the probe is out: nobody else
    reclaimed = claim_probe(claimed, 10.0, POLICY, probe_s=2)  # its worker vanished: claim again
    assert reclaimed is not None
    assert reclaimed.probe_until == 12.0


def test_the_probe_closes_or_reopens_and_only_a_half_open_breaker_takes_its_result() -> None:
    half = BreakerRecord("half_open", (), opened_at=3.0, probe_until=10.0)
    assert after_probe(half, True, 9.0, None) == CLOSED
    reopened = after_probe(half, False, 9.0, "upstream_timeout")
    assert reopened is not None
    assert (reopened.state, reopened.opened_at, reopened.reason) == ("open", 9.0, "upstream_timeout")
    assert after_probe(CLOSED, True, 9.0, None) is None


def test_failures_of_an_open_breaker_or_a_disabled_one_change_nothing() -> None:
    assert after_failure(BreakerRecord("open", opened_at=1.0), 2.0, POLICY, "x") is None
    assert after_failure(CLOSED, 2.0, BreakerPolicy(failures=0), "x") is None


def test_records_survive_the_store_and_an_unreadable_one_reads_as_closed() -> None:
    record = BreakerRecord("half_open", (1.5, 2.5), opened_at=2.5, probe_until=9.0, reason="server_error")
    assert BreakerRecord.decode(record.encode()) == record
    assert BreakerRecord.decode(b"{not json") == CLOSED
    assert BreakerRecord.decode(None) == CLOSED


def test_an_abandoned_probe_can_be_claimed_again_at_once() -> None:
    half = BreakerRecord("half_open", (), opened_at=3.0, probe_until=70.0)
    released = probe_abandoned(half, 9.0)
    assert released is not None
    assert released.state == "half_open"
    assert claim_probe(released, 9.0, POLICY, probe_s=2) is not None
    assert probe_abandoned(CLOSED, 9.0) is None
