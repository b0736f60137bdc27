"""Sign-in under `lobe dev`: session keys made once in the state directory, and a local OpenID
provider (devtools/node, any e-mail and any password) the gateway is configured for. Without node
the suite still runs; it says how to use a provider of your own instead."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from lobe.devtools.servers import BinaryNotFoundError, ServerStartError
from lobe.devtools.servers.oidc import OidcProviderServer
from lobe.gateway.auth.signing_keys import new_signing_key

DEV_ADMIN_EMAIL = "dev@lobe.local"
CLIENT_ID = "lobe-dev"


def dev_session_keys(state_dir: Path) -> str:
    """Generated once (mode 0600), so sessions survive a restart of `lobe dev`."""
    path = state_dir / "session-keys.json"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"keys": [new_signing_key("dev-1")]}, f)
    return path.read_text()


@dataclass
class DevSignIn:
    env: dict[str, str]  # for the gateway
    how: str  # the line `lobe dev` prints
    provider: OidcProviderServer | None = None

    def stop(self) -> None:
        if self.provider is not None:
            self.provider.close()


def start_dev_sign_in(state_dir: Path, gateway_url: str, environ: dict[str, str]) -> DevSignIn:
    env = {"SESSION_KEYS": environ.get("SESSION_KEYS") or dev_session_keys(state_dir)}
    yours = ("OIDC_DISCOVERY_URL", "OIDC_PROVIDERS", "GOOGLE_CLIENT_ID", "GITHUB_CLIENT_ID")
    if any(environ.get(name) for name in yours):
        return DevSignIn(env, f"sign in at {gateway_url}/auth/providers (your own provider's settings)")
    secret = secrets.token_urlsafe(16)
    client = {
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "redirect_uris": [f"{gateway_url}/auth/callback/oidc"],
    }
    try:
        provider = OidcProviderServer([client]).start()
    except (BinaryNotFoundError, ServerStartError) as exc:
        return DevSignIn(
            env,
            f"sign-in off: no local OpenID provider ({exc}); set OIDC_*, GOOGLE_* or GITHUB_* to use yours",
        )
    env |= {
        "OIDC_DISCOVERY_URL": provider.discovery_url,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": secret,
    }
    how = (
        f"sign in at {gateway_url}/auth/login/oidc (local OpenID provider: any e-mail, any password; "
        f"{DEV_ADMIN_EMAIL} is an admin)"
    )
    return DevSignIn(env, how, provider)
