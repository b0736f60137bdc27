"""The OpenAI Responses request (`POST /v1/responses`), as the gateway admits it.

Only the gateway reads it: it is translated to a chat request (lobe.gateway.responses_input) that
goes to the workers like any other, so every provider answers it through its chat adapter.

What is modelled: `input` (a string, or message, function_call, function_call_output and reasoning
items), `instructions`, `max_output_tokens`, `temperature`, `top_p`, `stream`, function `tools`,
`tool_choice`, `parallel_tool_calls`, `text.format` (text, json_object, json_schema), `reasoning.effort`,
`metadata`, `user`. Nothing is stored, so `store` must be false (or absent) and what needs a stored
response or conversation (`previous_response_id`, `conversation`, `background`, `prompt`) is refused
with a 400 naming it, as are other parameters no chat adapter can honour; unknown fields are dropped,
as for chat (lobe.shared.chat_schema).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from lobe.gateway.request_body import MAX_OUTPUT_TOKENS

# Refused when set (to anything but null, false or an empty list): each needs storage or a
# capability the chat adapters lack, and ignoring it would change the answer asked for.
REFUSED = {
    "previous_response_id": "responses are not stored here: send the whole conversation in `input`",
    "conversation": "conversations are not stored here: send the whole conversation in `input`",
    "background": "background responses are not supported (they need stored responses)",
    "prompt": "stored prompt templates are not supported: send `instructions` and `input`",
    "include": "no additional output data is available (`include` must be empty)",
    "top_logprobs": "logprobs are not supported by this gateway",
    "max_tool_calls": "this parameter is not supported by this gateway",
}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InputText(_Lenient):
    type: Literal["input_text"]
    text: str


class OutputText(_Lenient):
    """An earlier answer's text, sent back in an assistant message."""

    type: Literal["output_text"]
    text: str


class Refusal(_Lenient):
    type: Literal["refusal"]
    refusal: str


class InputImage(_Lenient):
    type: Literal["input_image"]
    image_url: str = Field(min_length=1, description="A URL or a data: URL (file ids are not supported).")
    detail: Literal["auto", "low", "high"] = "auto"


TextContent = Annotated[InputText | OutputText | Refusal, Field(discriminator="type")]
InputContent = Annotated[InputText | OutputText | Refusal | InputImage, Field(discriminator="type")]


class MessageItem(_Lenient):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputContent]

    @model_validator(mode="after")
    def _images_from_users_only(self) -> MessageItem:
        if self.role != "user" and any(isinstance(part, InputImage) for part in self.content):
            raise ValueError(f"only user messages can carry images, not {self.role} messages")
        return self


class FunctionCallItem(_Lenient):
    """A tool call from an earlier answer, sent back with the conversation."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class FunctionCallOutputItem(_Lenient):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[TextContent]


class ReasoningItem(_Lenient):
    """An earlier answer's reasoning, sent back with the conversation: no chat provider takes it
    back, so it is dropped."""

    type: Literal["reasoning"]


def _item_type(value: Any) -> str | None:
    # A message may leave out its `type` (OpenAI's EasyInputMessage).
    return value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", None)


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type),
]


class FunctionTool(_Lenient):
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionChoice(_Lenient):
    type: Literal["function"]
    name: str = Field(min_length=1)


class FormatText(_Lenient):
    type: Literal["text"]


class FormatJsonObject(_Lenient):
    type: Literal["json_object"]


class FormatJsonSchema(_Lenient):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Lenient):
    format: Annotated[FormatText | FormatJsonObject | FormatJsonSchema, Field(discriminator="type")] = (
        FormatText(type="text")
    )


class ReasoningConfig(_Lenient):
    effort: Literal["minimal", "low", "medium", "high"] | None = None


class ResponsesRequest(_Lenient):
    """POST /v1/responses body."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[InputItem] = Field(description="A user message, or the conversation's items.")
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=16, le=MAX_OUTPUT_TOKENS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(default=None, max_length=256)
    store: bool | None = Field(default=None, description="Only false: responses are not stored.")
    truncation: Literal["disabled"] | None = None

    # Declared only so that a 400 names them (see REFUSED); never forwarded.
    previous_response_id: Any = Field(default=None, exclude=True)
    conversation: Any = Field(default=None, exclude=True)
    background: Any = Field(default=None, exclude=True)
    prompt: Any = Field(default=None, exclude=True)
    include: Any = Field(default=None, exclude=True)
    top_logprobs: Any = Field(default=None, exclude=True)
    max_tool_calls: Any = Field(default=None, exclude=True)

    @field_validator(*sorted(REFUSED))
    @classmethod
    def _refuse(cls, value: Any, info: Any) -> None:
        if value not in (None, False, []):
            raise ValueError(REFUSED[info.field_name])
        return None

    @field_validator("store")
    @classmethod
    def _not_stored(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("responses are not stored here: send `store: false` (or leave it out)")
        return value

    @field_validator("input", mode="wrap")
    @classmethod
    def _input(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> str | list[Any]:
        # One message naming the item at fault, rather than one per member of each union.
        if not isinstance(value, str | list):
            raise ValueError("must be a string or an array of input items")
        if not value and isinstance(value, list):
            raise ValueError("must not be an empty array")
        try:
            checked: str | list[Any] = handler(value)
        except ValidationError as exc:
            raise ValueError(_item_error(exc)) from None
        return checked


# The labels pydantic puts in an error's location for a union's members and a tagged union's tags.
_TAGS = frozenset(
    {"message", "function_call", "function_call_output", "reasoning", "str"}
    | {"input_text", "output_text", "refusal", "input_image"}
)


def _item_error(exc: ValidationError) -> str:
    """`[0].content[1].text: Field required` for the deepest problem in a list of items."""
    errors = [e for e in exc.errors() if e["loc"] and str(e["loc"][0]).startswith("list[")]
    first = max(errors or exc.errors(), key=lambda e: len(e["loc"]))
    path = ""
    for part in first["loc"][1:]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" not in part and part not in _TAGS:
            path += f".{part}"
    message = first["msg"].removeprefix("Value error, ")
    return f"item {path.lstrip('.')}: {message}" if path else message
