"""Model routing config: which deployments (configured upstreams) serve each public model name, how
a request picks among them, and where it goes when they fail (docs/routing.md).

Operators edit a YAML file (path in `MODELS_FILE`); it is validated at start-up (a bad file stops
the worker) and on every reload (a bad file is refused and the routing in use stays), with each
bad field named with its line. Secrets never sit in the file: a deployment names the environment
variable that holds its key (`api_key_env`, default per provider).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from lobe.chat_worker.policies import BreakerPolicy, Limits, RetryPolicy, Strategy
from lobe.shared.config_file import read_yaml
from lobe.shared.events.usage import DisconnectBilling

Endpoint = Literal["chat", "embeddings", "responses", "images", "speech", "transcriptions"]
ProviderKind = Literal["openai", "anthropic", "gemini", "ollama", "openai_compatible", "azure_openai", "mock"]

# The providers with an embeddings API (adapters in lobe.chat_worker.providers): Anthropic has none.
EMBEDDING_PROVIDERS = frozenset({"openai", "openai_compatible", "azure_openai", "gemini", "ollama", "mock"})
# The providers whose images, speech and transcription APIs have adapters (OpenAI's wire).
MEDIA_PROVIDERS = frozenset({"openai", "openai_compatible", "mock"})
ENDPOINT_PROVIDERS: dict[str, frozenset[str]] = {
    "embeddings": EMBEDDING_PROVIDERS,
    "images": MEDIA_PROVIDERS,
    "speech": MEDIA_PROVIDERS,
    "transcriptions": MEDIA_PROVIDERS,
}

# How a Responses request reaches a deployment (Deployment.responses), and the providers with an
# adapter for their own Responses API.
ResponsesApi = Literal["chat", "native"]
NATIVE_RESPONSES_PROVIDERS = frozenset({"openai", "openai_compatible"})

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

    name: str = Field(min_length=1, max_length=128, description="Unique id: usage events, metrics, state.")
    provider: ProviderKind
    model: str = Field(default="", description="Model name upstream; defaults to the public name.")
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = Field(default=None, description="Azure OpenAI api-version.")
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    weight: int = Field(default=1, ge=0, description="weighted: share of first picks; 0 = standby only.")
    limits: Limits | None = None
    breaker: BreakerPolicy = Field(default_factory=BreakerPolicy)
    chunk_delay_s: float = Field(default=0.0, ge=0, description="mock only: pacing between chunks.")
    disconnect_billing: DisconnectBilling | None = Field(
        default=None,
        description="What a cancelled request on this deployment is billed for (bill_partial, "
        "bill_full, bill_none); a plan's setting comes first; unset: bill_partial (docs/billing.md).",
    )
    responses: ResponsesApi = Field(
        default="chat",
        description="How a POST /v1/responses request is sent upstream: chat (translated to the "
        "provider's chat API, any provider) or native (the upstream's own /responses, streamed: "
        "openai and openai_compatible only; docs/responses.md).",
    )

    @model_validator(mode="after")
    def _needs_base_url(self) -> Deployment:
        if self.provider in ("openai_compatible", "azure_openai", "ollama") and not self.base_url:
            raise ValueError(f"provider '{self.provider}' needs base_url")
        if self.responses == "native" and self.provider not in NATIVE_RESPONSES_PROVIDERS:
            raise ValueError(
                f"responses: native needs provider openai or openai_compatible, not '{self.provider}'"
            )
        return self

    def api_key(self) -> SecretStr | None:
        env = self.api_key_env or DEFAULT_KEY_ENV.get(self.provider)
        value = os.environ.get(env) if env else None
        return SecretStr(value) if value else None

    @property
    def config_key(self) -> str:
        """Identity of this configuration: a reload that changes it gets a new adapter."""
        return self.model_dump_json()


class RoutedModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Public model name clients ask for.")
    deployments: list[Deployment] = Field(min_length=1)
    owned_by: str = "lobe"
    serves: list[Endpoint] = Field(
        default=["chat"],
        min_length=1,
        description="What the model answers: chat (POST /v1/chat/completions), embeddings "
        "(POST /v1/embeddings), responses (POST /v1/responses, answered through the chat adapters), "
        "images (POST /v1/images/generations), speech (POST /v1/audio/speech), transcriptions "
        "(POST /v1/audio/transcriptions), or several. A request to an endpoint not listed gets a 404.",
    )
    strategy: Strategy = Field(default="ordered", description="How a request picks its first deployment.")
    explore: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="lowest_latency: share of requests sent elsewhere to keep measuring.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    fallbacks: list[str] = Field(default_factory=list, description="Models tried after these deployments.")
    context_fallback: str | None = Field(
        default=None, description="The larger-context model a context-window error moves to."
    )


class ModelCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[RoutedModel]

    def get(self, name: str) -> RoutedModel | None:
        return next((m for m in self.models if m.name == name), None)

    def reaches(self, name: str) -> list[tuple[str, str]]:
        """(provider, upstream model) of every deployment a request for `name` may be served by,
        fallbacks and context fallbacks followed to the end (billing holds at the dearest)."""
        found: dict[tuple[str, str], None] = {}
        todo, seen = [name], set()
        while todo:
            model = self.get(todo.pop())
            if model is None or model.name in seen:
                continue
            seen.add(model.name)
            found.update({(d.provider, d.model or model.name): None for d in model.deployments})
            todo.extend([*model.fallbacks, *([model.context_fallback] if model.context_fallback else [])])
        return list(found)

    @classmethod
    def parse(cls, raw: Any) -> ModelCatalog:
        """Validate a whole file: each field, then what ties models together (unique names, the
        models fallbacks name), each problem at its own location so the loader can give its line."""
        catalog = cls.model_validate(raw)
        problems = list(catalog._reference_problems())
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return catalog

    def _reference_problems(self) -> list[InitErrorDetails]:
        problems: list[InitErrorDetails] = []

        def problem(loc: tuple[str | int, ...], value: object, message: str) -> None:
            problems.append(
                InitErrorDetails(type=PydanticCustomError("routing", message), loc=loc, input=value)
            )

        models: set[str] = set()
        deployments: set[str] = set()
        for i, model in enumerate(self.models):
            if model.name in models:
                problem(("models", i, "name"), model.name, f"model '{model.name}' is listed twice")
            models.add(model.name)
            for j, deployment in enumerate(model.deployments):
                for endpoint in model.serves:
                    allowed = ENDPOINT_PROVIDERS.get(endpoint)  # None: every provider chats
                    if allowed is not None and deployment.provider not in allowed:
                        message = f"provider '{deployment.provider}' has no {endpoint} API"
                        problem(("models", i, "deployments", j, "provider"), deployment.provider, message)
                if deployment.name in deployments:
                    message = f"deployment name '{deployment.name}' is used twice (names key shared state)"
                    problem(("models", i, "deployments", j, "name"), deployment.name, message)
                deployments.add(deployment.name)
            if model.strategy == "weighted" and not any(d.weight for d in model.deployments):
                problem(
                    ("models", i, "strategy"), model.strategy, "weighted needs a deployment with weight > 0"
                )
        names = models | {BUILTIN_MODEL.name}
        serves = {m.name: set(m.serves) for m in [*self.models, BUILTIN_MODEL]}
        for i, model in enumerate(self.models):
            for j, fallback in enumerate(model.fallbacks):
                if fallback not in names or fallback == model.name:
                    problem(("models", i, "fallbacks", j), fallback, f"no other model is named '{fallback}'")
                elif not set(model.serves) <= serves[fallback]:
                    # A fallback answers the requests the model gets: it must serve the same endpoints.
                    message = f"'{fallback}' does not serve {', '.join(model.serves)} as '{model.name}' does"
                    problem(("models", i, "fallbacks", j), fallback, message)
            target = model.context_fallback
            if target is not None and (target not in names or target == model.name):
                problem(("models", i, "context_fallback"), target, f"no other model is named '{target}'")
        return problems


# The built-in mock answers every endpoint, so `lobe dev` serves them all without upstreams.
BUILTIN_MODEL = RoutedModel(
    name="mock",
    deployments=[Deployment(name="mock", provider="mock")],
    serves=["chat", "embeddings", "responses", "images", "speech", "transcriptions"],
)
BUILTIN = ModelCatalog(models=[BUILTIN_MODEL])


def with_builtin(catalog: ModelCatalog) -> ModelCatalog:
    """The built-in `mock` model is always served, unless the file routes a model of that name."""
    if catalog.get(BUILTIN_MODEL.name) is None:
        catalog.models.append(BUILTIN_MODEL.model_copy(deep=True))
    return catalog


def load_catalog(path: str | Path | None) -> ModelCatalog:
    """The built-in `mock` model plus whatever the operator's file routes; a bad file raises
    ConfigError naming each bad field and its line."""
    if not path:
        return BUILTIN.model_copy(deep=True)
    return with_builtin(read_yaml(ModelCatalog, path, validate=ModelCatalog.parse))
