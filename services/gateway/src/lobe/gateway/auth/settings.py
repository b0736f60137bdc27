"""Sign-in, session and CORS settings: fragments of GatewaySettings (environment only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from lobe.shared.settings import Fragment


def comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def domain_set(value: str) -> frozenset[str]:
    """E-mail domains from a comma-separated list, compared in lower case."""
    return frozenset(d.lower() for d in comma_list(value))


class SessionSettings(Fragment):
    session_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Session signing keys: a JWK Set (JSON) of private keys, each with a `kid`; "
        "sessions and sign-in are off when empty (docs/auth.md says how to make one).",
    )
    session_signing_kid: str | None = Field(
        default=None, description="The key that signs new sessions; the others only verify (rotation)."
    )
    session_ttl_s: int = Field(default=24 * 3600, ge=60, description="Session lifetime.")
    session_cookie_samesite: Literal["lax", "strict", "none"] = Field(
        default="lax", description="SameSite of the session cookie (none: a front end on another site)."
    )


class SignInSettings(Fragment):
    allowed_email_domains: str = Field(
        default="",
        description="Comma-separated e-mail domains that may sign in (with any provider that has no "
        "list of its own); empty = anyone.",
    )
    oidc_providers: str = Field(
        default="",
        description="Comma-separated names of further OpenID providers, each configured by its own "
        "`OIDC_<NAME>_*` variables (below); its users sign in at /auth/login/<name>.",
    )
    oidc_discovery_url: str | None = Field(
        default=None, description="OpenID provider's discovery URL (…/.well-known/openid-configuration)."
    )
    oidc_client_id: str | None = Field(default=None, description="Client id at the OpenID provider.")
    oidc_client_secret: SecretStr = Field(
        default=SecretStr(""), description="Client secret at the OpenID provider."
    )
    oidc_assume_email_verified: bool = Field(
        default=False,
        description="Take the OpenID provider's e-mail as verified when it sends no `email_verified` "
        "claim (a provider that owns every address it issues); an explicit false is refused even then.",
    )
    oidc_display_name: str = Field(
        default="OpenID Connect", description="What sign-in pages call the OIDC_DISCOVERY_URL provider."
    )
    google_client_id: str | None = Field(
        default=None, description="Google OAuth client id: offers sign-in with Google (provider `google`)."
    )
    google_client_secret: SecretStr = Field(default=SecretStr(""), description="Google OAuth client secret.")
    google_issuer: str = Field(
        default="https://accounts.google.com",
        description="Google's issuer; its discovery document is at …/.well-known/openid-configuration.",
    )
    google_allowed_domains: str = Field(
        default="",
        description="E-mail domains Google sign-in admits (comma-separated); empty = ALLOWED_EMAIL_DOMAINS.",
    )
    github_client_id: str | None = Field(default=None, description="GitHub OAuth app's client id.")
    github_client_secret: SecretStr = Field(
        default=SecretStr(""), description="GitHub OAuth app's client secret."
    )
    github_url: str = Field(
        default="https://github.com", description="GitHub's web URL (GitHub Enterprise: your server)."
    )
    github_api_url: str = Field(
        default="https://api.github.com", description="GitHub's API URL (GitHub Enterprise: …/api/v3)."
    )
    gateway_public_url: str | None = Field(
        default=None,
        description="The gateway's URL as browsers see it (callback URLs); unset = from each request.",
    )

    @property
    def email_domains(self) -> frozenset[str]:
        return domain_set(self.allowed_email_domains)


class AdminSettings(Fragment):
    billing_admin_url: str | None = Field(
        default=None, description="Billing's admin API (its ops port), for admin sessions at /v1/admin/*."
    )
    billing_admin_token: SecretStr | None = Field(
        default=None, description="Bearer token for /v1/admin/*; admin API disabled when unset."
    )


class CorsSettings(Fragment):
    cors_allowed_origins: str = Field(
        default="",
        description="Comma-separated browser origins allowed to call the API with credentials "
        "(exact, e.g. https://chat.example.com); empty = no CORS.",
    )

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(o.rstrip("/") for o in comma_list(self.cors_allowed_origins))
