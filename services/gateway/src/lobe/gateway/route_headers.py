"""What the client learns about routing: which deployment and provider answered (or failed last)
and after how many provider attempts, as response headers, on every output and on errors."""

from __future__ import annotations

import math

from lobe.shared.events.chat import ErrorFrame, Route


def route_headers(route: Route | None) -> dict[str, str]:
    if route is None:
        return {}
    return {
        "X-Lobe-Deployment": route.deployment,
        "X-Lobe-Provider": route.provider,
        "X-Lobe-Attempts": str(route.attempts),
    }


def error_headers(frame: ErrorFrame) -> dict[str, str]:
    headers = route_headers(frame.route)
    if frame.retry_after_s is not None:
        headers["Retry-After"] = str(max(math.ceil(frame.retry_after_s), 1))
    return headers
