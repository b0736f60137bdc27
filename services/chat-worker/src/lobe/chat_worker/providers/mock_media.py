"""The built-in mock's media answers, deterministic, so `lobe dev` serves every endpoint without
upstreams (docs/media.md):

- images: a valid 1x1 PNG whose colour is seeded by the prompt (b64_json, or a `data:` URL when
  the client asks for `url`: there is no image host);
- speech: a valid file, 10 ms of audio per input character: WAV (24 kHz 16-bit mono, a tone),
  raw PCM (the same samples, OpenAI's `pcm`), or MP3 (silent MPEG-1 Layer III frames);
  the mock speaks no other format;
- transcription: a fixed text, its duration the file's size at 128 kbit/s (16,000 bytes a second).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import zlib
from collections.abc import AsyncIterator

from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.media import GeneratedImages, Transcribed
from lobe.shared.media_schema import ImagesRequest, SpeechRequest

SAMPLE_RATE = 24_000
MS_PER_CHARACTER = 10
CHUNK_BYTES = 16 * 1024
MOCK_TRANSCRIPT = "The quick brown fox jumps over the lazy dog."
MOCK_AUDIO_BYTES_PER_S = 16_000
# MPEG-1 Layer III, 32 kbit/s, 44.1 kHz, mono: 104-byte frames of 1,152 samples; zero side info
# and main data decode as silence.
MP3_FRAME = bytes([0xFF, 0xFB, 0x10, 0xC4]) + bytes(100)
MP3_FRAME_S = 1152 / 44_100


def png_1x1(seed: str) -> bytes:
    red, green, blue = hashlib.sha256(seed.encode()).digest()[:3]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(bytes([0, red, green, blue]))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def mock_images(body: ImagesRequest) -> GeneratedImages:
    images = []
    for index in range(body.n):
        encoded = base64.b64encode(png_1x1(f"{index}:{body.prompt}")).decode()
        if body.response_format == "url":
            images.append({"url": f"data:image/png;base64,{encoded}"})
        else:
            images.append({"b64_json": encoded})
    return GeneratedImages(created=1_700_000_000, images=images)


def pcm_samples(characters: int) -> bytes:
    count = SAMPLE_RATE * MS_PER_CHARACTER * characters // 1000
    # A 440 Hz tone at a quarter of full scale: audible, so a listener knows the file plays.
    return b"".join(
        struct.pack("<h", int(8191 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE))) for i in range(count)
    )


def wav_header(data_bytes: int) -> bytes:
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def mock_audio(body: SpeechRequest) -> bytes:
    characters = len(body.input)
    if body.response_format == "mp3":
        frames = max(math.ceil(characters * MS_PER_CHARACTER / 1000 / MP3_FRAME_S), 1)
        return MP3_FRAME * frames
    if body.response_format in ("wav", "pcm"):
        samples = pcm_samples(characters)
        return samples if body.response_format == "pcm" else wav_header(len(samples)) + samples
    message = f"the mock speaks mp3, wav and pcm, not {body.response_format}"
    raise ProviderError("mock", 400, "invalid_request", message, ours=True)


async def mock_speech(body: SpeechRequest) -> AsyncIterator[bytes]:
    audio = mock_audio(body)
    for start in range(0, len(audio), CHUNK_BYTES):
        yield audio[start : start + CHUNK_BYTES]


async def mock_transcription(audio: AsyncIterator[bytes]) -> Transcribed:
    size = 0
    async for chunk in audio:  # read as it streams, never kept
        size += len(chunk)
    duration = round(size / MOCK_AUDIO_BYTES_PER_S, 3)
    segment = {"start": 0.0, "end": duration, "text": MOCK_TRANSCRIPT}
    return Transcribed(text=MOCK_TRANSCRIPT, duration_s=duration, segments=[segment], language="english")
