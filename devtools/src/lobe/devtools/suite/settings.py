"""Settings by field name, as environment variables: one way to configure a service in both modes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr


def as_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """`{"worker_silence_s": 1.0, "billing_enabled": False}` -> WORKER_SILENCE_S=1.0, BILLING_ENABLED=false
    (pydantic-settings reads each field from its upper-cased name)."""
    return {name.upper(): _text(value) for name, value in settings.items()}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value)
