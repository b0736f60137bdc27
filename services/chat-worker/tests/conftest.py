from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS

from .support import ScriptedGateway


@pytest.fixture(autouse=True)
def _provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each provider's key variable set, as a deployment reads it (the fake upstream ignores it)."""
    for env in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(env, f"test-key-{env.split('_')[0].lower()}")


@pytest.fixture
async def scripted_gateway(nc: NATS) -> ScriptedGateway:
    """The gateway's side of the bus (see support.py), on the test's own connection."""
    return await ScriptedGateway(nc).start()
