"""The OpenAI Chat Completions request, as clients send it today.

The gateway validates client bodies with these models (a 400 names the bad field) and the chat
request event carries the validated body to the workers, whose provider adapters translate it.

Policy for parameters we do not model: OpenAI parameters that no adapter can honour
(`n` > 1, `logprobs`, `top_logprobs`, `logit_bias`, `audio`, `modalities`, `prediction`,
`web_search_options`) are rejected with a 400 naming the field, because silently ignoring them
would change the answer the client asked for. Unknown fields that are not OpenAI parameters are
dropped: SDKs and proxies add vendor hints there, and they carry no meaning for us.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

REJECTED_PARAMETERS = frozenset(
    {"logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction", "web_search_options"}
)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: str


class ImageURL(_Lenient):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]
Content = str | list[ContentPart]


class FunctionCall(_Lenient):
    name: str
    arguments: str


class ToolCall(_Lenient):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Lenient):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Lenient):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Lenient):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Lenient):
    role: Literal["assistant"]
    content: str | list[TextPart] | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None


class ToolMessage(_Lenient):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


class FunctionDefinition(_Lenient):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Lenient):
    type: Literal["function"]
    function: FunctionDefinition


class NamedToolChoice(_Lenient):
    class _Function(_Lenient):
        name: str

    type: Literal["function"]
    function: _Function


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JsonSchemaSpec(_Lenient):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ResponseFormatText(_Lenient):
    type: Literal["text"]


class ResponseFormatJsonObject(_Lenient):
    type: Literal["json_object"]


class ResponseFormatJsonSchema(_Lenient):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJsonObject | ResponseFormatJsonSchema,
    Field(discriminator="type"),
]


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    """POST /v1/chat/completions body."""

    # lobe.shared.token_ceiling's answer, kept: the gateway's rate limit and budget hold both ask
    # it of the same body (~11 µs a time); a copy with another max_tokens keeps it (same prompt).
    _prompt_token_ceiling: int | None = PrivateAttr(default=None)
    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = Field(default=None, max_length=256)
    n: int | None = Field(default=None, ge=1, le=1, description="Only n=1 is supported.")
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    metadata: dict[str, str] | None = None

    # Declared only so that a 400 names them (see the module docstring); never forwarded.
    logprobs: Any = Field(default=None, exclude=True)
    top_logprobs: Any = Field(default=None, exclude=True)
    logit_bias: Any = Field(default=None, exclude=True)
    audio: Any = Field(default=None, exclude=True)
    modalities: Any = Field(default=None, exclude=True)
    prediction: Any = Field(default=None, exclude=True)
    web_search_options: Any = Field(default=None, exclude=True)

    @field_validator(*sorted(REJECTED_PARAMETERS))
    @classmethod
    def _reject_unsupported(cls, value: Any) -> None:
        if value not in (None, False):
            raise ValueError("this parameter is not supported by this gateway")
        return None

    @model_validator(mode="after")
    def _stop_is_bounded(self) -> ChatCompletionRequest:
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("'stop' takes at most 4 sequences")
        return self

    @property
    def output_token_limit(self) -> int | None:
        """The client's cap on generated tokens, whichever name it used."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def wants_usage_chunk(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)
