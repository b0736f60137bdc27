"""Embeddings answers computed from the request, in each provider's documented wire format, for
`FakeUpstream(answer=embeddings_answer)`: a recorded transcript has a fixed number of vectors,
a client's batch any number.

- OpenAI, Azure OpenAI and compatible servers (`.../embeddings`): `{"object": "list", "data":
  [{"object": "embedding", "index": i, "embedding": [...]}], "model": ..., "usage":
  {"prompt_tokens": n, "total_tokens": n}}` (tests/fixtures/providers/embeddings/openai_*.json);
  `encoding_format: "base64"` gets each vector as little-endian float32 bytes, base64-encoded.
- Gemini (`...:batchEmbedContents`): `{"embeddings": [{"values": [...]}]}`, no token count.
- Ollama (`/api/embed`): `{"model": ..., "embeddings": [[...]], "total_duration": ...,
  "load_duration": ..., "prompt_eval_count": n}`.

Vectors are seeded by a hash of the text (same text, same vector) and `FAKE_DIMENSIONS` long unless
the request asks for `dimensions` (`outputDimensionality`); a token is counted per 4 bytes of text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

from lobe.devtools.fake_upstream import Recorded, Reply

FAKE_DIMENSIONS = 8


def fake_vector(text: str, dimensions: int) -> list[float]:
    """Values in [-1, 1), exact in float32 (multiples of 2**-16), seeded by the text."""
    raw = b"".join(hashlib.sha256(f"{i}:{text}".encode()).digest() for i in range(-(-dimensions * 2 // 32)))
    return [v / 2**15 for v in struct.unpack(f"<{dimensions}h", raw[: dimensions * 2])]


def fake_tokens(texts: list[str]) -> int:
    return sum(-(-len(text.encode()) // 4) for text in texts)


def _json(document: Any) -> Reply:
    return Reply(json.dumps(document).encode(), 200, "application/json")


def _texts(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def openai_embeddings(request: dict[str, Any], model: str) -> Reply:
    texts = _texts(request["input"])
    dimensions = request.get("dimensions") or FAKE_DIMENSIONS
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(texts):
        vector: Any = fake_vector(text, dimensions)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = fake_tokens(texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return _json({"object": "list", "data": data, "model": model, "usage": usage})


def gemini_embeddings(request: dict[str, Any]) -> Reply:
    embeddings = []
    for one in request["requests"]:
        text = "".join(part["text"] for part in one["content"]["parts"])
        embeddings.append({"values": fake_vector(text, one.get("outputDimensionality") or FAKE_DIMENSIONS)})
    return _json({"embeddings": embeddings})


def ollama_embeddings(request: dict[str, Any]) -> Reply:
    texts = _texts(request["input"])
    dimensions = request.get("dimensions") or FAKE_DIMENSIONS
    return _json(
        {
            "model": request["model"],
            "embeddings": [fake_vector(text, dimensions) for text in texts],
            "total_duration": 14143917,
            "load_duration": 1019500,
            "prompt_eval_count": fake_tokens(texts),
        }
    )


def embeddings_answer(recorded: Recorded) -> Reply | None:
    """The provider's answer to an embeddings request; None for any other request."""
    path = recorded.path
    if path.endswith("/embeddings"):
        body = recorded.json
        # Azure names the deployment in the path and the model nowhere in the body.
        model = body.get("model") or path.split("/deployments/")[-1].split("/")[0]
        return openai_embeddings(body, model)
    if path.endswith(":batchEmbedContents"):
        return gemini_embeddings(recorded.json)
    if path == "/api/embed":
        return ollama_embeddings(recorded.json)
    return None
