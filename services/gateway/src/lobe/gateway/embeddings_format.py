"""An embeddings answer in OpenAI's shape: `{"object": "list", "data": [{"object": "embedding",
"index": i, "embedding": ...}], "model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}`.

The worker's vectors are base64 float32 already (OpenAI's `encoding_format: "base64"`, which the
official SDKs ask for by default and decode themselves); `float` unpacks them to JSON numbers.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.embeddings import EmbeddingsAnswer


def floats(vector: str) -> list[float]:
    raw = base64.b64decode(vector)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def embeddings_object(answer: EmbeddingsAnswer, body: EmbeddingsRequest) -> dict[str, Any]:
    as_base64 = body.encoding_format == "base64"
    tokens = answer.usage.prompt_tokens if answer.usage is not None else 0
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector if as_base64 else floats(vector)}
            for index, vector in enumerate(answer.vectors)
        ],
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
