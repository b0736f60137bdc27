"""What the client learns about routing: which provider answered (or failed last) and after how
many provider attempts, as response headers, on every output and on errors. The deployment's
name only where the operator allows it (EXPOSE_DEPLOYMENT_NAMES): names often say which account
or key served, and are the operator's, not the client's."""

from __future__ import annotations

import math

from lobe.shared.events.chat import ErrorFrame, Route
from lobe.shared.events.chat_wire import WireRoute


def route_headers(route: Route | WireRoute | None, expose_deployment: bool) -> dict[str, str]:
    if route is None:
        return {}
    headers = {"X-Lobe-Provider": route.provider, "X-Lobe-Attempts": str(route.attempts)}
    if expose_deployment:
        headers["X-Lobe-Deployment"] = route.deployment
    return headers


def error_headers(frame: ErrorFrame, expose_deployment: bool) -> dict[str, str]:
    headers = route_headers(frame.route, expose_deployment)
    if frame.retry_after_s is not None:
        headers["Retry-After"] = str(max(math.ceil(frame.retry_after_s), 1))
    return headers
