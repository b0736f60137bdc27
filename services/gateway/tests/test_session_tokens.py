"""Session tokens (lobe.gateway.auth.session_tokens): what a key ring signs it verifies until the
token expires, through a key rotation, and nothing else, with a reason safe to show."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt

from lobe.gateway.auth.session_tokens import SESSION_AUDIENCE, SessionClaims, TokenRefused, TokenSigner
from lobe.gateway.auth.sign_in_flow import FLOW_AUDIENCE
from lobe.gateway.auth.signing_keys import load_key_ring, new_signing_key

KEY_A, KEY_B, OTHER = new_signing_key("a"), new_signing_key("b"), new_signing_key("a")


def signer(*keys: dict[str, Any], kid: str | None = None) -> TokenSigner:
    ring = load_key_ring(json.dumps({"keys": list(keys)}), kid)
    assert ring is not None
    return TokenSigner(ring)


def claims(ttl_s: int, **extra: Any) -> SessionClaims:
    now = int(time.time())
    fields = {"sub": "usr_1", "email": "ann@corp.example", "role": "user", "plan": "free", "sid": "s1"}
    return SessionClaims.model_validate({**fields, "iat": now - 5, "exp": now + ttl_s, **extra})


def refusal(token_signer: TokenSigner, token: str) -> str:
    with pytest.raises(TokenRefused) as refused:
        token_signer.open_session(token)
    assert token not in str(refused.value)  # never quoted back
    reason: str = refused.value.reason
    return reason


def test_a_session_opens_with_its_claims_until_it_expires_and_not_a_second_after() -> None:
    ring = signer(KEY_A)
    live = claims(ttl_s=60)
    assert ring.open_session(ring.sign_session(live)) == live
    assert live.seconds_left() in (59, 60)
    assert refusal(ring, ring.sign_session(claims(ttl_s=-1))) == "expired"


def test_after_a_rotation_old_sessions_still_open_new_ones_carry_the_new_kid_and_a_dropped_key_ends_them() -> (
    None
):
    before = signer(KEY_A)
    old = before.sign_session(claims(ttl_s=60))
    rotated = signer(KEY_A, KEY_B, kid="b")
    assert rotated.open_session(old).sid == "s1"
    new = rotated.sign_session(claims(ttl_s=60))
    assert jwt.decode(new, rotated.ring.keys).header["kid"] == "b"
    assert refusal(before, new) == "unknown_kid"  # a replica not yet rotated cannot vouch for it
    retired = signer(KEY_B)
    assert refusal(retired, old) == "unknown_kid"


def test_a_token_signed_by_another_key_under_the_same_kid_or_tampered_with_is_refused() -> None:
    ring = signer(KEY_A)
    assert refusal(ring, signer(OTHER).sign_session(claims(ttl_s=60))) == "bad_signature"
    header, payload, signature = ring.sign_session(claims(ttl_s=60)).split(".")
    promoted = {**json.loads(base64.urlsafe_b64decode(payload + "==")), "role": "admin"}
    forged_payload = base64.urlsafe_b64encode(json.dumps(promoted).encode()).rstrip(b"=").decode()
    assert refusal(ring, f"{header}.{forged_payload}.{signature}") == "bad_signature"
    assert refusal(ring, "eyJ.not.a-token") == "malformed"


def test_a_sign_in_flow_token_is_no_session_and_a_session_no_flow() -> None:
    ring = signer(KEY_A)
    now = int(time.time())
    flow = ring.sign({"state": "s", "iat": now, "exp": now + 60}, FLOW_AUDIENCE)
    assert refusal(ring, flow) == "invalid_claims"
    with pytest.raises(TokenRefused) as refused:
        ring.open(ring.sign_session(claims(ttl_s=60)), FLOW_AUDIENCE)
    assert refused.value.reason == "invalid_claims"


def test_a_token_without_the_session_claims_is_refused_as_invalid() -> None:
    ring = signer(KEY_A)
    now = int(time.time())
    assert (
        refusal(ring, ring.sign({"sub": "usr_1", "iat": now, "exp": now + 60}, SESSION_AUDIENCE))
        == "invalid_claims"
    )
