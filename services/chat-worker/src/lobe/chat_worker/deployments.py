"""Model routing config: which deployments (configured upstreams) serve each public model name.

Operators edit a YAML file (path in `MODELS_FILE`); it is validated at start-up and a bad file
stops the worker with a message naming the field. Secrets never sit in the file: a deployment
names the environment variable that holds its key (`api_key_env`, default per provider).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ProviderKind = Literal["openai", "anthropic", "gemini", "ollama", "openai_compatible", "azure_openai", "mock"]

DEFAULT_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
}


class Timeouts(BaseModel):
    """Separate budgets: a slow first byte is not a stalled stream, and neither is a slow answer."""

    model_config = ConfigDict(extra="forbid")

    connect_s: float = Field(default=5.0, gt=0)
    first_byte_s: float = Field(default=60.0, gt=0)
    idle_s: float = Field(default=30.0, gt=0, description="Longest silence between two chunks.")
    total_s: float = Field(default=600.0, gt=0)


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Unique id, used in usage events and metrics.")
    provider: ProviderKind
    model: str = Field(default="", description="Model name upstream; defaults to the public name.")
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = Field(default=None, description="Azure OpenAI api-version.")
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    weight: int = Field(default=1, ge=0)
    chunk_delay_s: float = Field(default=0.0, ge=0, description="mock only: pacing between chunks.")

    @model_validator(mode="after")
    def _needs_base_url(self) -> Deployment:
        if self.provider in ("openai_compatible", "azure_openai", "ollama") and not self.base_url:
            raise ValueError(f"provider '{self.provider}' needs base_url")
        return self

    def api_key(self) -> SecretStr | None:
        env = self.api_key_env or DEFAULT_KEY_ENV.get(self.provider)
        value = os.environ.get(env) if env else None
        return SecretStr(value) if value else None


class RoutedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Public model name clients ask for.")
    deployments: list[Deployment] = Field(min_length=1)
    owned_by: str = "lobe"


class ModelCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[RoutedModel]

    def get(self, name: str) -> RoutedModel | None:
        return next((m for m in self.models if m.name == name), None)


BUILTIN = ModelCatalog(
    models=[RoutedModel(name="mock", deployments=[Deployment(name="mock", provider="mock")])]
)


def load_catalog(path: str | None) -> ModelCatalog:
    """The built-in `mock` model plus whatever the operator's file routes."""
    if not path:
        return BUILTIN
    raw = yaml.safe_load(Path(path).read_text()) or {}
    catalog = ModelCatalog.model_validate(raw)
    if catalog.get("mock") is None:
        catalog.models.append(BUILTIN.models[0])
    return catalog
