"""Admin pages about the fleet: the models the workers route with their deployments' health
(`chat.models`, answered by a worker from the routing state every worker shares), and the
refusals this gateway replica counted (its Prometheus counters, since it started)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import Counter

from lobe.gateway.console.page import document, h, signed_in, table
from lobe.gateway.metrics import RATE_LIMITED, REQUESTS
from lobe.gateway.models import served_models

REFUSED = {"402", "403", "429"}  # budgets and rate limits answer 429; 402/403 for completeness


def _counted(counter: Counter, label: str, keep: set[str] | None = None) -> list[tuple[str, str]]:
    rows = []
    for metric in counter.collect():
        for sample in metric.samples:
            value = sample.labels.get(label, "")
            if sample.name.endswith("_total") and (keep is None or value in keep) and sample.value:
                rows.append((h(value), h(int(sample.value))))
    return rows


async def models_page(request: web.Request) -> web.Response:
    session = await signed_in(request, admin=True)
    sections = []
    for model in await served_models(request):
        rows = [
            (
                h(d.name),
                h(d.provider),
                h(d.model or model.id),
                f'<span class="breaker-{h(d.breaker)}">{h(d.breaker.replace("_", " "))}</span>',
                h(d.in_flight),
                h("—" if d.ttft_ms is None else f"{d.ttft_ms:.0f} ms"),
                h(" / ".join(f"{v} {u}" for v, u in ((d.rpm, "rpm"), (d.tpm, "tpm")) if v) or "none"),
                h(f"{d.headroom:.0%}"),
            )
            for d in model.deployments
        ]
        head = ("Deployment", "Provider", "Upstream model", "Breaker", "In flight", "TTFT", "Limits", "Left")
        sections.append(table(f"Model {model.id}", head, rows, "no deployment reported."))
    limited = table(
        "Rate-limited requests, by limit", ("Limit", "Refused"), _counted(RATE_LIMITED, "limit"), "None."
    )
    statuses = table(
        "Chat requests refused, by status",
        ("Status", "Requests"),
        _counted(REQUESTS, "status", REFUSED),
        "None.",
    )
    body = (
        "".join(sections)
        + "<h2>Recent refusals</h2><p>Counted by this gateway replica since it started (its /metrics "
        "has them over time).</p>" + limited + statuses
    )
    return document("Models and health", body, session)
