"""The units a media request is priced by (usage kind image, speech, transcription): what its
usage event reports and what its budget hold bounds. Chat and embeddings count tokens only."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MediaUnits(BaseModel):
    """Images (with the size and quality that price them), characters of speech input, seconds
    of transcribed audio. Zero (or None) where the kind does not count it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    images: int = Field(default=0, ge=0, le=1000)
    image_size: str | None = Field(default=None, max_length=32, description="e.g. 1024x1024")
    image_quality: str | None = Field(default=None, max_length=32, description="e.g. standard, hd")
    characters: int = Field(default=0, ge=0, le=10_000_000)
    audio_seconds: float = Field(default=0, ge=0, le=10_000_000, allow_inf_nan=False)
