"""docs/openapi/*.json stay what the services describe, and what they describe is exactly the
routes their applications register: no route undocumented, no documented route missing."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from lobe.billing.api import build_api
from lobe.billing.openapi import billing_openapi
from lobe.devtools.openapi import ROOT, documents
from lobe.gateway.app import create_app
from lobe.gateway.openapi import FORWARDED_ADMIN, gateway_openapi
from lobe.gateway.settings import GatewaySettings
from lobe.shared.ops import add_ops_routes

METHODS = {"get", "post", "put", "delete", "patch"}
CATCH_ALL = "/v1/admin/{path}"  # the gateway's forward of billing's admin API


def test_committed_documents_match_what_the_services_describe() -> None:
    stale = [str(p) for p, text in documents().items() if (ROOT / p).read_text() != text]
    assert stale == [], f"out of date: {stale}; run python -m lobe.devtools.openapi"


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops if m in METHODS}


def registered(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        if route.method != "HEAD":
            routes.add((route.method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)))
    return routes


async def resolves(app: web.Application, method: str, path: str) -> bool:
    concrete = re.sub(r"\{\w+\}", "x", path)
    match = await app.router.resolve(make_mocked_request(method, concrete, app=app))
    return match.http_exception is None


async def test_the_gateways_document_is_exactly_its_routes() -> None:
    app = create_app(GatewaySettings())
    doc = gateway_openapi()
    routes = registered(app)
    assert ("*", CATCH_ALL) in routes
    assert routes - {("*", CATCH_ALL)} <= documented(doc), "registered but undocumented"
    for method, path in documented(doc):
        assert await resolves(app, method, path), f"documented but not served: {method} {path}"
    # What the catch-all forwards is billing's admin API, documented on both sides alike.
    forwarded = {(m.upper(), p) for p, ops in FORWARDED_ADMIN.items() for m in ops}
    billing_admin = {(m, p) for m, p in documented(billing_openapi()) if p.startswith("/v1/admin/")}
    assert forwarded == billing_admin


async def test_billings_document_is_exactly_its_ops_port_routes() -> None:
    app = build_api(None, None, None, None, None)  # type: ignore[arg-type]
    add_ops_routes(app, ready=lambda: None)  # type: ignore[arg-type,return-value]
    assert registered(app) == documented(billing_openapi())


async def test_no_document_lists_metrics_on_a_public_port_and_the_gateways_serves_none() -> None:
    assert not any("/metrics" in path for path in gateway_openapi()["paths"])
    app = create_app(GatewaySettings())
    assert not await resolves(app, "GET", "/metrics")
