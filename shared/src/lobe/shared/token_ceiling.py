"""The prompt's token ceiling: an upper bound of what any provider we route to counts for a
prompt, for the budget hold (lobe.gateway.budget). lobe.shared.tokens estimates; this bounds.

Why bytes bound tokens (docs/billing.md, "How far spend can pass a limit"): the tokenizers of the
providers we ship (OpenAI's and Anthropic's byte-level BPE, Gemini's and Llama's SentencePiece
with byte fallback) split a text into pieces that each stand for at least one of its UTF-8 bytes,
so a text never has more tokens than bytes. What is not the text's own bytes is counted apart,
each by a documented ceiling: the special tokens framing a message or a tool call
(OpenAI: 3 per message, 1 per name, 3 priming the reply; SentencePiece: 1 dummy prefix per text),
the tool-use preamble a provider writes around tool definitions (Anthropic documents at most 530
tokens), and images, which are not sent as bytes of text.
Everything the prompt carries is counted: every message part, names, tool calls (id, name,
arguments), tool results, tool definitions and the `response_format` schema, as their JSON; the
JSON's quotes, braces and keys only add bytes, so the bound stays a bound.
A media request's is its prompt text's bytes (lobe.shared.media_schema). An embeddings request's ceiling is each input's bytes plus a framing per input (the special tokens
an encoder adds around a text: BERT-style models' [CLS] and [SEP], SentencePiece's prefix).
"""

from __future__ import annotations

from lobe.shared.chat_schema import ChatCompletionRequest, ImagePart
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.media_schema import MediaRequest

# Framing of one message, one tool call or one text part: above every provider's special tokens.
FRAMING_TOKENS = 16
# The reply's priming and the request's own wrapper (system preamble, JSON-mode instructions).
REQUEST_TOKENS = 64
# The tool-use preamble a provider adds when tools are defined (Anthropic: 346 to 530 tokens).
TOOLS_PREAMBLE_TOKENS = 600
# Images are counted by detail, never by their URL's bytes (a base64 image is megabytes).
# `low`: OpenAI's fixed 85. `high`/`auto`/unset with unknown dimensions: the largest of the
# documented formulas: OpenAI's tiles (fit 2048 x 2048, shortest side 768: at most 2 x 4 tiles
# of 512 px, 85 + 8 x 170 = 1,445) and Anthropic's (long edge scaled to 1,568 px, w x h / 750:
# about 1,600 at most).
IMAGE_TOKENS = {"low": 85, "high": 1600, "auto": 1600, None: 1600}


def prompt_token_ceiling(body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest) -> int:
    """Tokens a provider can count for this prompt, at most (the output cap is the caller's).
    Computed once per body (the rate limit and the budget hold both ask)."""
    ceiling = body._prompt_token_ceiling
    if ceiling is None:
        if isinstance(body, EmbeddingsRequest):
            ceiling = sum(FRAMING_TOKENS + _bytes(text) for text in body.texts)
        elif isinstance(body, MediaRequest):  # priced by its units; its prompt's text still counts
            ceiling = FRAMING_TOKENS + _bytes(body.prompt_text)
        else:
            ceiling = _ceiling(body)
        body._prompt_token_ceiling = ceiling
    return ceiling


def _ceiling(body: ChatCompletionRequest) -> int:
    total = REQUEST_TOKENS
    for message in body.messages:
        total += FRAMING_TOKENS
        content = getattr(message, "content", None)
        if isinstance(content, list):
            for part in content:
                if isinstance(part, ImagePart):
                    total += FRAMING_TOKENS + IMAGE_TOKENS[part.image_url.detail]
                else:
                    total += FRAMING_TOKENS + _bytes(part.model_dump_json())
            message = message.model_copy(update={"content": None})
        # The rest of the message (text content, name, tool calls and their arguments, the tool
        # call id a result answers) as JSON: every byte of it reaches the provider.
        total += _bytes(message.model_dump_json(exclude_none=True))
        total += FRAMING_TOKENS * len(getattr(message, "tool_calls", None) or ())
    if body.tools:
        total += TOOLS_PREAMBLE_TOKENS
        total += sum(FRAMING_TOKENS + _bytes(tool.model_dump_json()) for tool in body.tools)
    # The structured output's schema and the named tool choice reach the model as text too.
    total += _bytes(
        body.model_dump_json(include={"tool_choice", "response_format"}, by_alias=True, exclude_none=True)
    )
    return total


def _bytes(text: str) -> int:
    return len(text.encode())
