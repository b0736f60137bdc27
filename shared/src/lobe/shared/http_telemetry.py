"""What every HTTP API of the suite records per request: `lobe_http_request_duration_seconds`
and a server span per request (the gateway's and billing's).

The caller's W3C trace context is continued (the span is its child) on an internal API; on a
public one (`instrument(app, public=True)`) the span starts a trace of its own and only links to
the caller's: anyone may send a `traceparent`, and as a parent it would put our spans in a trace
the client chose (its id, its sampling decision), which an internal caller behind the same port
could not be told apart from.

Labels stay bounded whatever clients send: `route` is the matched resource's template
(`/v1/admin/keys/{key_id}`), never the raw path, and every path no route matched is the one value
`unmatched`; a method outside the standard set is `OTHER`. Routes named with UNMEASURED_PREFIX
(health and /metrics, see lobe.shared.ops) are not measured: probes and scrapes would swamp the
request rate that the HPA scales on. A streamed answer is measured to its last byte.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from prometheus_client import Histogram

from lobe.shared.openai_errors import ApiError
from lobe.shared.telemetry import extract_context, link_from_headers

HTTP_BUCKETS = (0.1, 0.5, 1, 2, 5, 10)
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "OTHER"
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMEASURED_PREFIX = "unmeasured."
CLIENT_CLOSED = 499  # the client went away before the answer (nginx's convention)

REQUEST_DURATION = Histogram(
    "lobe_http_request_duration_seconds",
    "HTTP requests served, by method, route template and status code (streams to their last byte).",
    ["method", "route", "status_code"],
    buckets=HTTP_BUCKETS,
)
TRACER = trace.get_tracer("lobe.shared.http")
PUBLIC = web.AppKey("lobe.http_public", bool)  # a caller's trace context is a link, not a parent


def route_template(request: web.Request) -> str | None:
    """The route label of a request; None for an unmeasured route."""
    resource = request.match_info.route.resource
    if resource is None:  # no route matched the path (404), or none the method (405)
        return UNMATCHED_ROUTE
    if resource.name is not None and resource.name.startswith(UNMEASURED_PREFIX):
        return None
    return resource.canonical


@web.middleware
async def observe_http(request: web.Request, handler: Any) -> web.StreamResponse:
    route = route_template(request)
    if route is None:
        response: web.StreamResponse = await handler(request)
        return response
    method = request.method if request.method in STANDARD_METHODS else OTHER_METHOD
    started = time.perf_counter()
    status = 500
    # Parsing is most of a span's cost here, and most callers send no trace context.
    caller, links = None, None
    if "traceparent" in request.headers:
        if request.app.get(PUBLIC, False):
            link = link_from_headers(request.headers)
            caller, links = otel_context.Context(), [link] if link else None  # a root, linked
        else:
            caller = extract_context(request.headers)
    with TRACER.start_as_current_span(
        f"{method} {route}",
        context=caller,
        links=links,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "http.route": route},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            response = await handler(request)
            status = response.status
            return response
        except (web.HTTPException, ApiError) as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:  # a client's error is not the server's (OTel HTTP conventions)
                span.set_status(Status(StatusCode.ERROR))
            REQUEST_DURATION.labels(method, route, str(status)).observe(time.perf_counter() - started)


def instrument(app: web.Application, public: bool = False) -> None:
    """Measure `app`'s requests (outermost, so it sees the status other middlewares settle on);
    `public`: anyone can reach it, so callers' trace contexts are links (module docstring)."""
    app[PUBLIC] = public
    if observe_http not in app.middlewares:
        app.middlewares.insert(0, observe_http)
