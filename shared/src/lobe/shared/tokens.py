"""The token estimator, for providers that report no usage and for cancelled streams.

Documented rule: ceil(UTF-8 bytes / 4) per text, the same ratio OpenAI quotes for English
("a token is about 4 characters"), plus 4 tokens of framing per message. Good to about ±20 %
for English prose; usage it produces is marked `basis="estimated"` so billing and reports can
tell it apart from provider-reported counts.
"""

from __future__ import annotations

from lobe.shared.chat_schema import ChatCompletionRequest, TextPart

BYTES_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = 85  # OpenAI's flat cost of a low-detail image


def estimate_tokens(text: str) -> int:
    return -(-len(text.encode()) // BYTES_PER_TOKEN)


def estimate_prompt_tokens(body: ChatCompletionRequest) -> int:
    total = 0
    for message in body.messages:
        total += TOKENS_PER_MESSAGE
        content = message.content
        if isinstance(content, str):
            total += estimate_tokens(content)
        elif content:
            for part in content:
                total += estimate_tokens(part.text) if isinstance(part, TextPart) else TOKENS_PER_IMAGE
    if body.tools:
        total += sum(estimate_tokens(tool.function.model_dump_json()) for tool in body.tools)
    return total
