"""Session signing keys: a JWK Set from SESSION_KEYS (a secret). One key signs, every key verifies,
so a key rotates without signing anyone out: add the new key, make it the signer, and drop the old
one once the sessions it signed have expired (SESSION_TTL_S later)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

# The algorithm a key signs with when its JWK names none: by key type and curve.
DEFAULT_ALGORITHMS = {("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384", ("OKP", "Ed25519"): "Ed25519"}
RSA_ALGORITHM = "RS256"
SigningKey = ECKey | OKPKey | RSAKey


class SigningKeyError(ValueError):
    """SESSION_KEYS or SESSION_SIGNING_KID cannot be used; the message says why, never a key."""


@dataclass(frozen=True)
class KeyRing:
    signer: SigningKey
    algorithm: str  # the signer's
    keys: KeySet  # every key that verifies
    algorithms: tuple[str, ...]  # what verification accepts: exactly the ring's algorithms

    @property
    def kid(self) -> str:
        return str(self.signer.kid)

    def public_jwks(self) -> dict[str, Any]:
        """What /.well-known/jwks.json serves: the public halves, with `alg` and `use` set."""
        entries = []
        for key in self.keys:
            public = key.as_dict(private=False)
            public.update(alg=algorithm_of(key), use="sig")
            entries.append(public)
        return {"keys": entries}


def algorithm_of(key: Any) -> str:
    named = key.get("alg")
    if named:
        return str(named)
    if key.key_type == "RSA":
        return RSA_ALGORITHM
    try:
        return DEFAULT_ALGORITHMS[(key.key_type, key.get("crv"))]
    except KeyError:
        raise SigningKeyError(f"key {key.kid!r}: no algorithm for {key.key_type} {key.get('crv')}") from None


def load_key_ring(jwks_json: str, signing_kid: str | None) -> KeyRing | None:
    """The ring from SESSION_KEYS, or None when it is empty (sessions are off)."""
    if not jwks_json.strip():
        return None
    try:
        raw = json.loads(jwks_json)
        kids = [entry.get("kid") for entry in raw["keys"]]
        keys = KeySet.import_key_set(raw)
    except (ValueError, JoseError, TypeError, KeyError, AttributeError) as exc:
        # The exception's text may quote key material: name only its kind.
        raise SigningKeyError(f"SESSION_KEYS is not a JWK Set ({type(exc).__name__})") from None
    if not kids:
        raise SigningKeyError("SESSION_KEYS holds no key")
    if None in kids or len(set(kids)) != len(kids):
        raise SigningKeyError("every key in SESSION_KEYS needs a `kid` of its own")
    for key in keys:
        if key.key_type == "oct" or not key.is_private:
            raise SigningKeyError(f"key {key.kid!r} is not an asymmetric private key")
    if signing_kid is not None and signing_kid not in kids:
        raise SigningKeyError(f"SESSION_SIGNING_KID {signing_kid!r} is not in SESSION_KEYS ({kids})")
    signer = keys.get_by_kid(signing_kid) if signing_kid else keys.keys[0]
    algorithms = tuple(sorted({algorithm_of(key) for key in keys}))
    return KeyRing(signer, algorithm_of(signer), keys, algorithms)  # type: ignore[arg-type]


def new_signing_key(kid: str | None = None) -> dict[str, Any]:
    """A fresh ES256 private key as a JWK, for SESSION_KEYS (`lobe auth new-key`)."""
    kid = kid or "k-" + secrets.token_hex(4)
    key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256", "use": "sig"}, private=True)
    return key.as_dict(private=True)
