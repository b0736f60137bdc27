"""Which sign-in providers a gateway offers, from its settings: any number at once, each under a
name that is part of its users' identity (billing keys identities by (provider name, subject)).

- `oidc`: the single OpenID provider of OIDC_DISCOVERY_URL / OIDC_CLIENT_ID (as before).
- `google`: GOOGLE_CLIENT_ID / GOOGLE_CLIENT_SECRET, discovered at GOOGLE_ISSUER's well-known URL.
- `github`: GITHUB_CLIENT_ID / GITHUB_CLIENT_SECRET.
- every name in OIDC_PROVIDERS: an OpenID provider of its own, from OIDC_<NAME>_* variables
  (`OidcProviderSettings`), e.g. OIDC_PROVIDERS=keycloak with OIDC_KEYCLOAK_ISSUER, …

Each provider admits the e-mail domains of its own list, else ALLOWED_EMAIL_DOMAINS.
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, SecretStr, model_validator

from lobe.gateway.auth.github import GitHubProvider
from lobe.gateway.auth.identity import Provider
from lobe.gateway.auth.oidc import OidcProvider
from lobe.gateway.auth.settings import SignInSettings, comma_list, domain_set
from lobe.shared.settings import Fragment

WELL_KNOWN = "/.well-known/openid-configuration"
# Lowercase, so a name reads the same in a URL (/auth/login/<name>) and a variable (OIDC_<NAME>_*).
NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
BUILT_IN = ("oidc", "google", "github")  # configured by variables of their own


class SignInConfigError(ValueError):
    """OIDC_PROVIDERS names a provider whose variables are missing or wrong: the gateway does not
    start, rather than offer a sign-in that fails at the provider."""


class OidcProviderSettings(Fragment):
    """One named OpenID provider: the variables OIDC_<NAME>_* (the field names, upper-cased)."""

    issuer: str | None = Field(
        default=None,
        description="The issuer (this or DISCOVERY_URL is required); discovery at ISSUER/.well-known/openid-configuration.",
    )
    discovery_url: str | None = Field(
        default=None, description="The discovery URL, when not at the issuer's."
    )
    client_id: str = Field(default="", description="Client id at the provider (required).")
    client_secret: SecretStr = Field(default=SecretStr(""), description="Client secret at the provider.")
    allowed_domains: str = Field(
        default="",
        description="Comma-separated e-mail domains this provider admits; empty = ALLOWED_EMAIL_DOMAINS.",
    )
    display_name: str = Field(
        default="", description="What sign-in pages show; empty = the name, capitalized."
    )
    assume_email_verified: bool = Field(
        default=False, description="As OIDC_ASSUME_EMAIL_VERIFIED, for this provider."
    )

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.client_id:
            raise ValueError("CLIENT_ID is required")
        if not (self.issuer or self.discovery_url):
            raise ValueError("ISSUER (or DISCOVERY_URL) is required")
        return self

    @property
    def discovery(self) -> str:
        return self.discovery_url or f"{(self.issuer or '').rstrip('/')}{WELL_KNOWN}"


def named_oidc_settings(name: str) -> OidcProviderSettings:
    prefix = f"OIDC_{name.upper()}_"
    try:
        return OidcProviderSettings(_env_prefix=prefix)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise SignInConfigError(f"OIDC_PROVIDERS names {name!r}: {prefix}{_first_error(exc)}") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        field = "_".join(str(part) for part in first["loc"]).upper()
        return f"{field}: {first['msg']}" if field else str(first["msg"]).removeprefix("Value error, ")
    return str(exc)


def provider_names(settings: SignInSettings) -> list[str]:
    names = comma_list(settings.oidc_providers.lower())
    for name in names:
        if not NAME.fullmatch(name):
            raise SignInConfigError(f"OIDC_PROVIDERS: {name!r} is not a name (a-z, then a-z, 0-9 or _)")
        if name in BUILT_IN:
            raise SignInConfigError(f"OIDC_PROVIDERS: {name!r} has variables of its own ({name.upper()}_*)")
    if len(set(names)) != len(names):
        raise SignInConfigError("OIDC_PROVIDERS names a provider twice")
    return names


def configured_providers(settings: SignInSettings) -> dict[str, Provider]:
    """Every provider these settings enable, by name (SignInConfigError for a broken one)."""
    everyone = settings.email_domains
    found: dict[str, Provider] = {}
    if settings.oidc_discovery_url and settings.oidc_client_id:
        found["oidc"] = OidcProvider(
            "oidc",
            settings.oidc_display_name,
            settings.oidc_discovery_url,
            settings.oidc_client_id,
            settings.oidc_client_secret.get_secret_value(),
            everyone,
            settings.oidc_assume_email_verified,
        )
    if settings.google_client_id:
        found["google"] = OidcProvider(
            "google",
            "Google",
            f"{settings.google_issuer.rstrip('/')}{WELL_KNOWN}",
            settings.google_client_id,
            settings.google_client_secret.get_secret_value(),
            domain_set(settings.google_allowed_domains) or everyone,
        )
    if settings.github_client_id:
        found["github"] = GitHubProvider(
            settings.github_client_id,
            settings.github_client_secret.get_secret_value(),
            settings.github_url,
            settings.github_api_url,
            everyone,
        )
    for name in provider_names(settings):
        named = named_oidc_settings(name)
        found[name] = OidcProvider(
            name,
            named.display_name or name.replace("_", " ").capitalize(),
            named.discovery,
            named.client_id,
            named.client_secret.get_secret_value(),
            domain_set(named.allowed_domains) or everyone,
            named.assume_email_verified,
        )
    return found
