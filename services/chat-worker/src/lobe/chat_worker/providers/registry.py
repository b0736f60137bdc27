"""Builds the adapter for a deployment. Adapters share the worker's one pooled HTTP session."""

from __future__ import annotations

import aiohttp

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.providers.base import Provider
from lobe.chat_worker.providers.mock import MockProvider


def build_provider(deployment: Deployment, session: aiohttp.ClientSession) -> Provider:
    if deployment.provider == "mock":
        return MockProvider(deployment.chunk_delay_s)
    raise NotImplementedError(f"no adapter for provider '{deployment.provider}' yet")
