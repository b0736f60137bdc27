"""Sign-in with any OpenID provider (Google, Keycloak, Entra, …) found by its discovery URL; a
gateway may run several, each under its own name (lobe.gateway.auth.provider_config).

authlib runs the code flow (authorization URL with state, nonce and PKCE S256; the code redeemed
with its verifier). The ID token is checked here with joserfc against the provider's JWKS:
signature, issuer, audience (and `azp`), expiry and the nonce of this very sign-in.
"""

from __future__ import annotations

from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from lobe.gateway.auth.identity import (
    SIGN_IN_TIMEOUT_S,
    Identity,
    SignInRefused,
    code_flow_client,
    provider_error,
)

SCOPE = "openid email"
# Asymmetric algorithms only: an ID token signed with the client secret (HS*) or unsigned is refused.
ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
CLOCK_SKEW_S = 60  # between the provider's clock and ours


class OidcProvider:
    def __init__(
        self,
        name: str,
        display_name: str,
        discovery_url: str,
        client_id: str,
        client_secret: str,
        domains: frozenset[str] = frozenset(),
        assume_email_verified: bool = False,
    ) -> None:
        self.name = name
        self.display_name = display_name
        self.domains = domains
        self.discovery_url = discovery_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.assume_email_verified = assume_email_verified
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        return code_flow_client(self.client_id, self._client_secret, SCOPE, redirect_uri)

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, code_verifier=code_verifier, nonce=nonce
            )
        return str(url)

    async def identity(self, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Identity:
        metadata = await self.metadata()
        async with self._client(redirect_uri) as client:
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    redirect_uri=redirect_uri,
                )
            except OAuthError:
                raise SignInRefused("code_refused", "The sign-in provider refused the code.", 400) from None
            except (httpx2.HTTPError, ValueError):
                raise provider_error("its token endpoint did not answer") from None
            id_token = token.get("id_token")
            if not isinstance(id_token, str):
                raise SignInRefused("token_invalid", "The sign-in provider sent no ID token.", 502)
            claims = await self._verified_claims(id_token, nonce)
            if not claims.get("email") and metadata.get("userinfo_endpoint"):
                info = await self._userinfo(client, metadata["userinfo_endpoint"])
                if info.get("sub") == claims["sub"]:  # OpenID Connect Core 5.3.2
                    claims = {**info, **claims}
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise SignInRefused("email_missing", "The sign-in provider gave no e-mail address.", 403)
        if not self._vouched_for(claims):
            domain = email.rpartition("@")[2].lower()
            raise SignInRefused("email_unverified", "That e-mail address is not verified.", 403, domain)
        return Identity(self.name, str(claims["sub"]), email)

    def _vouched_for(self, claims: dict[str, Any]) -> bool:
        """Billing links a first sign-in to the account provisioned for its e-mail, so an address
        the provider has not verified would let anyone claim it: only a JSON `true` counts (the
        string "false" is truthy). No claim at all counts only where the operator trusts this
        provider to verify every address (OIDC_ASSUME_EMAIL_VERIFIED)."""
        verified = claims.get("email_verified")
        return verified is True or ("email_verified" not in claims and self.assume_email_verified)

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, fetched once (again after a failure)."""
        if self._metadata is None:
            try:
                async with httpx2.AsyncClient(timeout=SIGN_IN_TIMEOUT_S) as http:
                    response = await http.get(self.discovery_url)
                    response.raise_for_status()
                    document = response.json()
                missing = {"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"} - set(document)
            except (httpx2.HTTPError, ValueError):
                raise provider_error("its discovery document did not load") from None
            if missing:
                raise provider_error(f"its discovery document lacks {sorted(missing)}")
            self._metadata = document
        return self._metadata

    async def _verified_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        metadata = await self.metadata()
        try:
            try:
                decoded = jwt.decode(id_token, await self._jwks(), algorithms=list(ID_TOKEN_ALGORITHMS))
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                decoded = jwt.decode(
                    id_token, await self._jwks(refresh=True), algorithms=list(ID_TOKEN_ALGORITHMS)
                )
            JWTClaimsRegistry(
                leeway=CLOCK_SKEW_S,
                iss={"essential": True, "value": metadata["issuer"]},
                aud={"essential": True, "value": self.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError):
            raise SignInRefused(
                "token_invalid", "The sign-in provider's ID token is not valid.", 502
            ) from None
        claims = dict(decoded.claims)
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInRefused("token_invalid", "The ID token was issued to another client.", 502)
        return claims

    async def _jwks(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            try:
                async with httpx2.AsyncClient(timeout=SIGN_IN_TIMEOUT_S) as http:
                    response = await http.get((await self.metadata())["jwks_uri"])
                    response.raise_for_status()
                    self._keys = KeySet.import_key_set(response.json())
            except (httpx2.HTTPError, ValueError, JoseError):
                raise provider_error("its signing keys did not load") from None
        return self._keys

    async def _userinfo(self, client: AsyncOAuth2Client, endpoint: str) -> dict[str, Any]:
        try:
            response = await client.get(endpoint)
            response.raise_for_status()
            info = response.json()
        except (httpx2.HTTPError, OAuthError, ValueError):
            raise provider_error("its userinfo endpoint did not answer") from None
        return info if isinstance(info, dict) else {}
