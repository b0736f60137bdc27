"""The cache's parts on their own: the memory tier's byte bound, LRU order and expiry; the key."""

from __future__ import annotations

import fnmatch

from lobe.gateway.cache.key import PREFIX, digest, key_pattern, normalised, scope_part
from lobe.gateway.cache.memory import ByteLRU
from lobe.shared.chat_schema import ChatCompletionRequest


def test_the_memory_tier_never_holds_more_bytes_than_its_bound_and_evicts_the_least_recent() -> None:
    lru = ByteLRU(capacity_bytes=10)
    lru.put("a", b"1234", expires_at=100)
    lru.put("b", b"1234", expires_at=100)
    assert lru.get("a", now=0) == b"1234"  # a is now the most recent
    lru.put("c", b"1234", expires_at=100)
    assert (lru.get("b", now=0), lru.get("a", now=0), lru.get("c", now=0)) == (None, b"1234", b"1234")
    assert lru.size == 8
    lru.put("huge", b"x" * 11, expires_at=100)  # larger than the whole tier: not kept
    assert (lru.get("huge", now=0), lru.size) == (None, 8)


def test_an_expired_entry_is_gone_and_frees_its_bytes() -> None:
    lru = ByteLRU(capacity_bytes=100)
    lru.put("a", b"12345", expires_at=10)
    assert lru.get("a", now=10) is None
    assert (len(lru), lru.size) == (0, 0)


def test_normalisation_ignores_how_the_output_cap_and_stop_are_spelled() -> None:
    base = {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "x"}]}
    a = ChatCompletionRequest.model_validate({**base, "max_tokens": 5, "stop": "END"})
    b = ChatCompletionRequest.model_validate(
        {**base, "max_completion_tokens": 5, "stop": ["END"], "stream": True}
    )
    assert normalised(a) == normalised(b)


def test_an_invalidation_pattern_covers_exactly_its_user_and_model() -> None:
    alice_m = f"{PREFIX}:{scope_part('alice')}:{digest('m')}:{'0' * 64}"
    bob_m = f"{PREFIX}:{scope_part('bob')}:{digest('m')}:{'0' * 64}"
    alice_n = f"{PREFIX}:{scope_part('alice')}:{digest('n*')}:{'0' * 64}"
    covered = {
        (user, model): {
            k for k in (alice_m, bob_m, alice_n) if fnmatch.fnmatchcase(k, key_pattern(user, model, False))
        }
        for user, model in [("alice", None), (None, "m"), ("alice", "n*"), (None, None)]
    }
    assert covered[("alice", None)] == {alice_m, alice_n}
    assert covered[(None, "m")] == {alice_m, bob_m}
    assert covered[("alice", "n*")] == {alice_n}  # a glob character in a name is just a name
    assert covered[(None, None)] == {alice_m, bob_m, alice_n}
