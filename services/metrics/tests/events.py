"""Event builders shared by the metrics tests."""

from __future__ import annotations

from typing import Any

from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.usage import UsageRecorded


def usage_event(request_id: str = "req-1", **overrides: Any) -> UsageRecorded:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "user_id": "user-1",
        "provider": "openai",
        "deployment": "openai-main",
        "model": "gpt-4o-mini",
        "usage": TokenUsage(prompt_tokens=12, completion_tokens=30, cached_tokens=4),
        "status": "ok",
        "ttft_ms": 180.0,
        "duration_ms": 1500.0,
        "stream": True,
    }
    fields.update(overrides)
    return UsageRecorded(**fields)
