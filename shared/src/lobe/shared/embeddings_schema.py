"""The OpenAI Embeddings request (`POST /v1/embeddings`), as clients send it.

The gateway validates client bodies with it (a 400 names the bad field), and the embeddings
request event carries the validated body to the workers, whose adapters translate it.

`input` is one string or an array of 1 to 2,048 strings, none empty, as OpenAI documents it.
Arrays of token ids (which OpenAI also takes) are refused with a 400: no provider but OpenAI's
wire reads them, and a token id means nothing across tokenizers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

# OpenAI's documented bound on the inputs of one request.
MAX_INPUTS = 2048
# Above every embedding model's output size today (3,072 for text-embedding-3-large).
MAX_DIMENSIONS = 16_384

EncodingFormat = Literal["float", "base64"]


class EmbeddingsRequest(BaseModel):
    """POST /v1/embeddings body. Unknown fields are dropped, as for chat (SDKs add vendor hints)."""

    model_config = ConfigDict(extra="ignore")

    # lobe.shared.token_ceiling's answer, kept: the rate limit and the budget hold both ask it.
    _prompt_token_ceiling: int | None = PrivateAttr(default=None)
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] = Field(description="One text, or an array of 1 to 2,048 texts; none empty.")
    encoding_format: EncodingFormat = "float"
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    user: str | None = Field(default=None, max_length=256)

    @field_validator("input", mode="wrap")
    @classmethod
    def _texts(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> str | list[str]:
        # One message for a wrong type, not one per member of the union.
        try:
            texts: str | list[str] = handler(value)
        except ValidationError:
            raise ValueError("must be a string or an array of strings") from None
        items = [texts] if isinstance(texts, str) else texts
        if not items:
            raise ValueError("must not be an empty array")
        if len(items) > MAX_INPUTS:
            raise ValueError(f"has {len(items)} items; at most {MAX_INPUTS} are allowed per request")
        for index, text in enumerate(items):
            if not text:
                where = "" if isinstance(texts, str) else f" (item {index})"
                raise ValueError(f"must not be an empty string{where}")
        return texts

    @property
    def texts(self) -> list[str]:
        """The inputs as a list, in order (one string is a list of one)."""
        return [self.input] if isinstance(self.input, str) else self.input

    @property
    def output_token_limit(self) -> int:
        """An embedding generates no tokens: what the budget hold and the token window add for
        the output (where chat's `output_token_limit` is the client's cap, or None)."""
        return 0
