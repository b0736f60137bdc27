"""The ops HTTP surface every service exposes: liveness, readiness and Prometheus /metrics.

The ops routes themselves are not measured (lobe.shared.http_telemetry): an API served beside
them, like billing's, is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from lobe.shared.http_telemetry import UNMEASURED_PREFIX, instrument


@dataclass(frozen=True)
class Readiness:
    """A readiness answer with its reasons, for a check that has more than one way to fail."""

    ready: bool
    reasons: tuple[str, ...] = ()


ReadinessCheck = Callable[[], Awaitable[bool | Readiness]]

LIVENESS_PATH = "/health/live"
READINESS_PATH = "/health/ready"
METRICS_PATH = "/metrics"


def add_health_routes(
    app: web.Application,
    ready: ReadinessCheck,
    liveness_path: str = LIVENESS_PATH,
    readiness_path: str = READINESS_PATH,
) -> None:
    """Liveness and readiness only: what a public listener may serve (never /metrics)."""

    async def live(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readiness(_: web.Request) -> web.Response:
        answer = await ready()
        found = answer if isinstance(answer, Readiness) else Readiness(answer)
        body: dict[str, object] = {"status": "ok" if found.ready else "unavailable"}
        if found.reasons:
            body["reasons"] = list(found.reasons)
        return web.json_response(body, status=200 if found.ready else 503)

    app.router.add_get(liveness_path, live, name=f"{UNMEASURED_PREFIX}live")
    app.router.add_get(readiness_path, readiness, name=f"{UNMEASURED_PREFIX}ready")


def add_ops_routes(
    app: web.Application, ready: ReadinessCheck, registry: CollectorRegistry = REGISTRY
) -> None:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    add_health_routes(app, ready)
    app.router.add_get(METRICS_PATH, metrics, name=f"{UNMEASURED_PREFIX}metrics")


async def start_ops_server(
    host: str,
    port: int,
    ready: ReadinessCheck,
    extra: web.Application | None = None,
    registry: CollectorRegistry = REGISTRY,
) -> web.AppRunner:
    """Serve the ops routes (plus `extra`'s routes) until the returned runner is cleaned up."""
    app = extra or web.Application()
    instrument(app)
    add_ops_routes(app, ready, registry=registry)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port actually bound (useful when asked for port 0)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    raise RuntimeError("ops server is not listening")
