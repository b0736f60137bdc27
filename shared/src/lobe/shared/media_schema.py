"""OpenAI's media requests as clients send them: `POST /v1/images/generations`,
`POST /v1/audio/speech` and `POST /v1/audio/transcriptions` (docs/media.md).

The gateway validates client bodies with them (a 400 names the bad field), and the request events
carry the validated body to the workers, whose adapters translate it. Each says the units it may
be priced by at most (`unit_ceiling`: the budget hold's upper bound) and, like the chat and
embeddings requests, the text tokens its prompt may count (the token window's charge).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from lobe.shared.events.units import MediaUnits

# OpenAI's documented bounds.
MAX_IMAGE_PROMPT = 32_000  # gpt-image-1's; dall-e-3 takes 4,000 and dall-e-2 1,000 (the provider says)
MAX_IMAGES = 10
MAX_SPEECH_INPUT = 4096
MAX_TRANSCRIPTION_BYTES = 25 * 1024 * 1024
# The fewest bytes a second of audio takes in any format a provider accepts (Opus at 6 kbit/s):
# a file's size over it bounds its duration from above, so the transcription's budget hold is an
# upper bound whatever the file holds (docs/media.md, "The budget hold").
MIN_AUDIO_BYTES_PER_S = 750

ImageSize = Literal[
    "auto", "256x256", "512x512", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "1024x1792"
]
ImageQuality = Literal["auto", "standard", "hd", "low", "medium", "high"]
ImageFormat = Literal["url", "b64_json"]
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
TranscriptFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]

# What a size or a quality the client left out (or `auto`) is priced as: OpenAI's defaults.
DEFAULT_IMAGE_SIZE = "1024x1024"
DEFAULT_IMAGE_QUALITY = "standard"

SPEECH_MEDIA_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


class MediaRequest(BaseModel):
    """What the edge asks of every media request (rate limit, budget hold, routing)."""

    model_config = ConfigDict(extra="ignore")

    # lobe.shared.token_ceiling's answer, kept: the rate limit and the budget hold both ask it.
    _prompt_token_ceiling: int | None = PrivateAttr(default=None)
    model: str = Field(min_length=1, max_length=256)
    user: str | None = Field(default=None, max_length=256)

    @property
    def prompt_text(self) -> str:
        """The text the request sends (the token window charges its ceiling)."""
        return ""

    @property
    def output_token_limit(self) -> int:
        """A media request generates no text tokens: what the hold and the token window add."""
        return 0

    def unit_ceiling(self) -> MediaUnits:
        """The most units this request can be priced by."""
        raise NotImplementedError


class ImagesRequest(MediaRequest):
    """POST /v1/images/generations body."""

    prompt: str = Field(min_length=1, max_length=MAX_IMAGE_PROMPT)
    n: int = Field(default=1, ge=1, le=MAX_IMAGES)
    size: ImageSize | None = None
    quality: ImageQuality | None = None
    response_format: ImageFormat | None = None
    style: Literal["vivid", "natural"] | None = None

    @property
    def prompt_text(self) -> str:
        return self.prompt

    @property
    def priced_size(self) -> str:
        return DEFAULT_IMAGE_SIZE if self.size in (None, "auto") else str(self.size)

    @property
    def priced_quality(self) -> str:
        return DEFAULT_IMAGE_QUALITY if self.quality in (None, "auto") else str(self.quality)

    def unit_ceiling(self) -> MediaUnits:
        return MediaUnits(images=self.n, image_size=self.priced_size, image_quality=self.priced_quality)


class SpeechRequest(MediaRequest):
    """POST /v1/audio/speech body. `stream_format: sse` (OpenAI's event stream of audio deltas)
    is refused: the audio bytes themselves are streamed."""

    input: str = Field(min_length=1, max_length=MAX_SPEECH_INPUT)
    voice: str = Field(min_length=1, max_length=64)
    response_format: SpeechFormat = "mp3"
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, max_length=MAX_SPEECH_INPUT)
    stream_format: Literal["audio"] | None = None

    @property
    def prompt_text(self) -> str:
        return self.input

    def unit_ceiling(self) -> MediaUnits:
        return MediaUnits(characters=len(self.input))

    @property
    def media_type(self) -> str:
        return SPEECH_MEDIA_TYPES[self.response_format]


class TranscriptionRequest(MediaRequest):
    """POST /v1/audio/transcriptions, its form fields; the file itself travels through the
    JetStream Object Store (`audio_object`), never in this model."""

    language: str | None = Field(default=None, max_length=16)
    prompt: str | None = Field(default=None, max_length=MAX_IMAGE_PROMPT)
    response_format: TranscriptFormat = "json"
    temperature: float | None = Field(default=None, ge=0, le=1)
    filename: str = Field(default="audio", max_length=256)
    file_bytes: int = Field(default=0, ge=0, le=MAX_TRANSCRIPTION_BYTES)
    audio_object: str = Field(
        default="", max_length=256, description="The file's name in the MEDIA object store."
    )

    @property
    def prompt_text(self) -> str:
        return self.prompt or ""

    def unit_ceiling(self) -> MediaUnits:
        return MediaUnits(audio_seconds=max_audio_seconds(self.file_bytes))


def max_audio_seconds(file_bytes: int) -> float:
    """The longest a file of this size can play (MIN_AUDIO_BYTES_PER_S), at least one second."""
    return float(max(-(-file_bytes // MIN_AUDIO_BYTES_PER_S), 1))
