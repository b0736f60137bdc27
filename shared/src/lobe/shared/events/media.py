"""Media domain: images, speech and transcription requests (docs/media.md).

Each is a core NATS request of the `chat-worker` queue group, answered by the worker that took it
after it recorded the usage (`usage.recorded`, kind image, speech or transcription). No reply in
time means no worker answered: the gateway says 503 or 504 and releases the budget hold.

- `images.request`: the images come back in the reply (b64_json or the provider's url); when the
  reply would not fit one NATS message, each b64_json waits in the MEDIA bucket instead
  (`b64_object`, named `<request_id>.<index>`) and the gateway streams it to the client.
- `speech.request`: the audio is streamed on `speech.audio.<request_id>` as numbered chunks while
  the provider sends it; the reply comes last and says how many chunks there were, so the gateway
  knows it has them all (core NATS keeps one publisher's order; a lost chunk is an error, never a
  silently shorter file).
- `transcription.request`: the uploaded file waits in the JetStream Object Store bucket MEDIA
  (lobe.shared.bus.objects), named by the request; the worker streams it to the provider, deletes
  it and answers with the transcript in the client's format.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lobe.shared.events.chat import Caller, Route
from lobe.shared.events.embeddings import EmbeddingsFailure
from lobe.shared.events.envelope import Event
from lobe.shared.events.units import MediaUnits
from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest

IMAGES_REQUEST = "images.request"
SPEECH_REQUEST = "speech.request"
SPEECH_AUDIO = "speech.audio.<request_id>"
TRANSCRIPTION_REQUEST = "transcription.request"
# The Object Store bucket uploads wait in; an object a lost worker never deleted expires (seconds).
MEDIA_BUCKET = "MEDIA"
MEDIA_OBJECT_TTL_S = 3600

# Why there is no answer: the same failure as an embeddings request's (status, code, message).
MediaFailure = EmbeddingsFailure
DEADLINE = Field(default=60_000, ge=1, description="Total time budget for the answer.")


class MediaAnswer(BaseModel):
    """What every media reply carries besides its content."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    request_id: str
    units: MediaUnits | None = Field(default=None, description="What the request was priced by.")
    route: Route | None = Field(default=None, description="Who answered (or failed last).")
    error: MediaFailure | None = None


class ImagesRequested(Event):
    """`images.request`: generate these images; answered with an ImagesAnswer."""

    caller: Caller
    body: ImagesRequest
    deadline_ms: int = DEADLINE


class GeneratedImage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    b64_json: str | None = None
    b64_object: str | None = Field(
        default=None,
        max_length=128,
        description="Instead of `b64_json` when the reply would not fit one NATS message: the "
        "object of the MEDIA bucket holding the provider's b64_json text, which the gateway "
        "streams to the client and deletes.",
    )
    url: str | None = None
    revised_prompt: str | None = None


class ImagesAnswer(MediaAnswer):
    """Reply to `images.request`: the images (in the format asked for), or `error`."""

    created: int = Field(default=0, description="Unix time the provider created them.")
    images: list[GeneratedImage] = Field(default_factory=list)


class SpeechRequested(Event):
    """`speech.request`: speak this input; the audio on `speech.audio.<request_id>`, then a SpeechEnded."""

    caller: Caller
    body: SpeechRequest
    deadline_ms: int = DEADLINE


class SpeechChunk(Event):
    """`speech.audio.<request_id>`: the next bytes of the audio, as the provider sent them."""

    seq: int = Field(ge=0, description="0, 1, 2, ... in the order the bytes play.")
    audio: str = Field(description="The bytes, base64-encoded.")


class SpeechEnded(MediaAnswer):
    """Reply to `speech.request`, sent after the last chunk: how many there were, or `error`
    (after some chunks: the audio is cut, and the client must learn it)."""

    chunks: int = Field(default=0, ge=0)


class TranscriptionRequested(Event):
    """`transcription.request`: transcribe the object `body.audio_object` of the MEDIA bucket."""

    caller: Caller
    body: TranscriptionRequest
    deadline_ms: int = DEADLINE


class TranscriptionAnswer(MediaAnswer):
    """Reply to `transcription.request`: the transcript rendered in the client's format."""

    content: str = Field(default="", description="The body to send: JSON, text, SRT or WebVTT.")
    content_type: str = "application/json"
