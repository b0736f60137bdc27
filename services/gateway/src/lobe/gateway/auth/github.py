"""Sign-in with GitHub: OAuth 2 (not OpenID Connect) with state and PKCE S256, then the user and
their e-mail addresses from GitHub's REST API. Only a verified address is ever used: the primary
one, unless ALLOWED_EMAIL_DOMAINS prefers another verified one."""

from __future__ import annotations

from typing import Any

import httpx2
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from lobe.gateway.auth.identity import (
    Identity,
    SignInRefused,
    code_flow_client,
    provider_error,
)

SCOPE = "read:user user:email"
API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GitHubProvider:
    name = "github"
    display_name = "GitHub"

    def __init__(
        self, client_id: str, client_secret: str, web_url: str, api_url: str, domains: frozenset[str]
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.web_url = web_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.domains = domains

    def _client(self, redirect_uri: str) -> AsyncOAuth2Client:
        # GitHub takes the client credentials in the form body.
        return code_flow_client(
            self.client_id,
            self._client_secret,
            SCOPE,
            redirect_uri,
            token_endpoint_auth_method="client_secret_post",
        )

    async def authorization_url(self, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        async with self._client(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                f"{self.web_url}/login/oauth/authorize", state=state, code_verifier=code_verifier
            )
        return str(url)

    async def identity(self, code: str, redirect_uri: str, code_verifier: str, nonce: str) -> Identity:
        async with self._client(redirect_uri) as client:
            try:
                # GitHub answers errors with 200 and an `error` field; authlib raises OAuthError for it.
                await client.fetch_token(
                    f"{self.web_url}/login/oauth/access_token",
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                    redirect_uri=redirect_uri,
                    headers={"Accept": "application/json"},
                )
            except OAuthError:
                raise SignInRefused("code_refused", "GitHub refused the code.", 400) from None
            except (httpx2.HTTPError, ValueError):
                raise provider_error("GitHub's token endpoint did not answer") from None
            user = await self._api(client, "/user")
            emails = await self._api(client, "/user/emails")
        if not isinstance(user, dict) or "id" not in user or not isinstance(emails, list):
            raise provider_error("GitHub's API answered something unexpected")
        return Identity("github", str(user["id"]), self._pick(emails))

    async def _api(self, client: AsyncOAuth2Client, path: str) -> Any:
        try:
            response = await client.get(f"{self.api_url}{path}", headers=API_HEADERS)
            response.raise_for_status()
            return response.json()
        except (httpx2.HTTPError, OAuthError, ValueError):
            raise provider_error(f"GitHub's API ({path}) did not answer") from None

    def _pick(self, emails: list[Any]) -> str:
        verified = [
            e["email"]
            for e in sorted(emails, key=lambda e: not (isinstance(e, dict) and e.get("primary")))
            if isinstance(e, dict) and e.get("verified") is True and isinstance(e.get("email"), str)
        ]
        if not verified:
            raise SignInRefused(
                "email_unverified", "Your GitHub account has no verified e-mail address.", 403
            )
        allowed = [e for e in verified if e.rpartition("@")[2].lower() in self.domains]
        return str((allowed or verified)[0])
