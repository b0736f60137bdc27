"""Bootstrap keys (GATEWAY_API_KEYS): parsed strictly at start-up, held only as digests."""

from __future__ import annotations

import pytest

from lobe.gateway.auth.api_keys import key_digest, parse_bootstrap_keys


def test_entries_map_key_digests_to_callers_with_free_as_the_default_plan() -> None:
    callers = parse_bootstrap_keys("sk-a:alice:premium, sk-b:bob")
    assert set(callers) == {key_digest("sk-a"), key_digest("sk-b")}
    alice, bob = callers[key_digest("sk-a")], callers[key_digest("sk-b")]
    assert (alice.user_id, alice.plan) == ("alice", "premium")
    assert (bob.user_id, bob.plan) == ("bob", "free")
    assert alice.api_key_id == key_digest("sk-a")[:16]  # an id for the ledger, never the key


def test_no_key_is_kept_in_clear() -> None:
    callers = parse_bootstrap_keys("sk-secret-123:alice")
    assert "sk-secret-123" not in repr(callers)


def test_empty_spec_and_empty_entries_give_no_keys() -> None:
    assert parse_bootstrap_keys("") == {}
    assert len(parse_bootstrap_keys(" , sk-a:alice ,, ")) == 1


@pytest.mark.parametrize(
    ("spec", "position"),
    [("sk-a", 1), ("sk-a:alice,sk-b", 2), ("sk-a::free", 1), (":alice", 1), ("sk-a:alice:free:extra", 1)],
)
def test_a_malformed_entry_stops_start_up_naming_its_position(spec: str, position: int) -> None:
    with pytest.raises(ValueError, match=f"entry {position} is not 'key:user_id"):
        parse_bootstrap_keys(spec)
