"""Builds the adapter for a deployment. Adapters share the worker's one pooled HTTP session."""

from __future__ import annotations

import aiohttp

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.providers.anthropic import AnthropicProvider
from lobe.chat_worker.providers.base import Provider
from lobe.chat_worker.providers.gemini import GeminiProvider
from lobe.chat_worker.providers.mock import MockProvider
from lobe.chat_worker.providers.ollama import OllamaProvider
from lobe.chat_worker.providers.openai import AzureOpenAIProvider, OpenAIProvider


def build_provider(deployment: Deployment, session: aiohttp.ClientSession) -> Provider:
    kind = deployment.provider
    if kind == "mock":
        return MockProvider(deployment.chunk_delay_s)
    if kind in ("openai", "openai_compatible"):
        return OpenAIProvider(deployment, session)
    if kind == "anthropic":
        return AnthropicProvider(deployment, session)
    if kind == "gemini":
        return GeminiProvider(deployment, session)
    if kind == "ollama":
        return OllamaProvider(deployment, session)
    if kind == "azure_openai":
        return AzureOpenAIProvider(deployment, session)
    raise ValueError(f"no adapter for provider '{kind}'")
