"""A real OpenID provider on loopback: panva's `oidc-provider` (certified, npm) under node, as
devtools/node/oidc-provider.mjs runs it. Its development login form takes any e-mail address and
any password; it requires PKCE and signs ID tokens with keys of its own, as a production provider
does. `tools/node-deps.sh` (make install) installs it."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from lobe.devtools.servers.base import EmbeddedServer
from lobe.devtools.servers.binaries import BinaryNotFoundError

PASSWORD = "any-password"  # its login form takes any
# devtools/src/lobe/devtools/servers/oidc.py -> devtools/node
NODE_DIR = Path(__file__).resolve().parents[4] / "node"
SCRIPT = NODE_DIR / "oidc-provider.mjs"


class OidcProviderServer(EmbeddedServer):
    name = "oidc-provider"

    def __init__(self, clients: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clients = clients

    @property
    def url(self) -> str:
        """The issuer."""
        return f"http://{self.host}:{self.port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def command(self) -> list[str]:
        node = shutil.which("node")
        if node is None:
            raise BinaryNotFoundError("node (20 or later)", debian="nodejs")
        if not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
            raise BinaryNotFoundError(
                "oidc-provider (npm)", wheel=None, debian="nodejs: run tools/node-deps.sh"
            )
        return [node, str(SCRIPT), str(self.port), json.dumps(self.clients)]

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.discovery_url, timeout=0.5) as response:
                return bool(json.load(response).get("issuer") == self.url)
        except (OSError, ValueError):
            return False


async def through_provider(http: aiohttp.ClientSession, location: str, issuer: str, email: str) -> str:
    """Follow the provider's pages as a person would (log in as `email`, consent) until it sends the
    browser back to the gateway; returns that callback URL. `http` keeps the provider's cookies.
    A login of `EMAIL;email_verified=JSON` is an account claiming EMAIL with that claim (see
    devtools/node/oidc-provider.mjs)."""
    for _ in range(12):
        if not location.startswith(issuer) and not location.startswith("/"):
            return location
        async with http.get(
            issuer + location if location.startswith("/") else location, allow_redirects=False
        ) as r:
            if r.status in (302, 303):
                location = r.headers["Location"]
                continue
            page = await r.text()
        action = re.search(r'<form[^>]*action="([^"]+)"', page)
        assert action, page[:500]
        form = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
        if 'name="login"' in page:
            form |= {"login": email, "password": PASSWORD}
        async with http.post(action.group(1), data=form, allow_redirects=False) as r:
            assert r.status in (302, 303), await r.text()
            location = r.headers["Location"]
    raise AssertionError("the provider never sent the browser back")
