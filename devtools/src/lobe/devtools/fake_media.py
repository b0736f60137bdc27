"""Images and speech answers computed from the request, in OpenAI's documented wire format, for
`FakeUpstream(answer=media_answer)` (OpenAI and compatible servers):

- `POST .../images/generations`: `{"created": ..., "data": [{"b64_json": ...} | {"url": ...}]}`,
  a PNG per image (`revised_prompt` as dall-e-3 sends it): 1x1 when no `size` is asked, else a
  real image of that size whose pixels are noise (incompressible: a 1024x1024 one is 3 MiB, 4 MiB
  as b64_json, as large as a real photo's);
- `POST .../audio/transcriptions`: the multipart form read (the file part kept for the test to
  check), answered in `verbose_json` as OpenAI documents it: the file's duration at 16-bit mono
  16 kHz (32,000 bytes a second) and two segments splitting it;
- `POST .../audio/speech`: the audio file's bytes, `Content-Type` per format, sent in HTTP chunks
  of up to 4 KiB, a WAV of silence (`speech_reply(release_last=...)` holds its last chunk until a
  test has seen the first bytes arrive).
"""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import json
import random
import struct
import zlib

from lobe.chat_worker.providers.mock_media import png_1x1, wav_header
from lobe.devtools.fake_upstream import Recorded, Reply

SPEECH_BYTES = 64 * 1024
SPEECH_CHUNK = 4096
FAKE_CREATED = 1_713_833_628


def png_noise(seed: str, width: int, height: int) -> bytes:
    """A valid RGB PNG of `width` x `height` pixels of seeded noise, stored uncompressed."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(3 * width) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(rows, level=0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def fake_png(seed: str, size: object) -> bytes:
    """The PNG the fake answers for `size` ("WxH", or None: 1x1)."""
    if not isinstance(size, str):
        return png_1x1(seed)
    width, height = (int(side) for side in size.split("x"))
    return png_noise(seed, width, height)


def images_reply(request: dict[str, object]) -> Reply:
    n = int(request.get("n") or 1)  # type: ignore[call-overload]
    data = []
    for index in range(n):
        seed = f"fake:{index}:{request['prompt']}"
        encoded = base64.b64encode(fake_png(seed, request.get("size"))).decode()
        if request.get("response_format") == "url":
            data.append(
                {"url": f"https://images.example.test/{index}.png", "revised_prompt": str(request["prompt"])}
            )
        else:
            data.append({"b64_json": encoded, "revised_prompt": str(request["prompt"])})
    body = json.dumps({"created": FAKE_CREATED, "data": data}).encode()
    return Reply(body, 200, "application/json", max_chunk=64 * 1024)


TRANSCRIPT_SEGMENTS = ("The quick brown fox", "jumps over the lazy dog.")
AUDIO_BYTES_PER_S = 32_000


def form_parts(recorded: Recorded) -> dict[str, bytes]:
    """A multipart/form-data request's parts by name (the file part's bytes as sent)."""
    head = f"Content-Type: {recorded.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + recorded.body)
    parts: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes), name
        parts[str(name)] = payload
    return parts


def transcription_reply(recorded: Recorded) -> Reply:
    duration = round(len(form_parts(recorded)["file"]) / AUDIO_BYTES_PER_S, 2)
    first, second = TRANSCRIPT_SEGMENTS
    half = round(duration / 2, 2)
    segment = {"seek": 0, "tokens": [50364, 440], "temperature": 0.0, "avg_logprob": -0.2}
    document = {
        "task": "transcribe",
        "language": "english",
        "duration": duration,
        "text": f"{first} {second}",
        "segments": [
            {"id": 0, **segment, "start": 0.0, "end": half, "text": f" {first}"},
            {"id": 1, **segment, "start": half, "end": duration, "text": f" {second}"},
        ],
    }
    return Reply(json.dumps(document).encode(), 200, "application/json", max_chunk=4096)


def speech_audio() -> bytes:
    return wav_header(SPEECH_BYTES - 44) + bytes(SPEECH_BYTES - 44)


def speech_reply(release_last: asyncio.Event | None = None) -> Reply:
    return Reply(speech_audio(), 200, "audio/wav", max_chunk=SPEECH_CHUNK, release_last=release_last)


def media_answer(recorded: Recorded) -> Reply | None:
    if recorded.path.endswith("/images/generations"):
        return images_reply(recorded.json)
    if recorded.path.endswith("/audio/transcriptions"):
        return transcription_reply(recorded)
    if recorded.path.endswith("/audio/speech"):
        return speech_reply()
    return None
