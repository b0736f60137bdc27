"""Images and speech answers computed from the request, in OpenAI's documented wire format, for
`FakeUpstream(answer=media_answer)` (OpenAI and compatible servers):

- `POST .../images/generations`: `{"created": ..., "data": [{"b64_json": ...} | {"url": ...}]}`,
  a 1x1 PNG per image (`revised_prompt` as dall-e-3 sends it);
- `POST .../audio/speech`: the audio file's bytes, `Content-Type` per format, sent in 4 KiB HTTP
  chunks `SPEECH_CHUNK_DELAY_S` apart (a model speaking as it goes), a WAV of silence.
"""

from __future__ import annotations

import base64
import json

from lobe.chat_worker.providers.mock_media import png_1x1, wav_header
from lobe.devtools.fake_upstream import Recorded, Reply

SPEECH_BYTES = 64 * 1024
SPEECH_CHUNK = 4096
SPEECH_CHUNK_DELAY_S = 0.05
FAKE_CREATED = 1_713_833_628


def images_reply(request: dict[str, object]) -> Reply:
    n = int(request.get("n") or 1)  # type: ignore[call-overload]
    data = []
    for index in range(n):
        encoded = base64.b64encode(png_1x1(f"fake:{index}:{request['prompt']}")).decode()
        if request.get("response_format") == "url":
            data.append(
                {"url": f"https://images.example.test/{index}.png", "revised_prompt": str(request["prompt"])}
            )
        else:
            data.append({"b64_json": encoded, "revised_prompt": str(request["prompt"])})
    return Reply(json.dumps({"created": FAKE_CREATED, "data": data}).encode(), 200, "application/json")


def speech_audio() -> bytes:
    return wav_header(SPEECH_BYTES - 44) + bytes(SPEECH_BYTES - 44)


def media_answer(recorded: Recorded) -> Reply | None:
    if recorded.path.endswith("/images/generations"):
        return images_reply(recorded.json)
    if recorded.path.endswith("/audio/speech"):
        return Reply(
            speech_audio(), 200, "audio/wav", max_chunk=SPEECH_CHUNK, chunk_delay_s=SPEECH_CHUNK_DELAY_S
        )
    return None
