"""The seed's dashboard queries on a real Prometheus scraping the running suite.

`lobe dev` runs every service as its own process (as in production: each /metrics is one
service's); Debian's Prometheus scrapes them and a node-exporter every SCRAPE_S, with the alert
rules loaded; a fake OpenAI upstream answers the chat requests. The test drives a known
workload and asserts what the dashboard's own queries (read from its JSON) return.

Why the workload starts with a cancelled stream: Prometheus's rate() ignores whatever a counter
holds at its first scrape. The metrics service creates every status series of a provider/model
pair at 0 when the pair is first seen, so after that first (cancelled) request the success and
error series are scraped at 0, and the N successes and M errors that follow all count: the
success rate is then N/(N+M)·100 exactly, not approximately.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE, STDOUT
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml

from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.pgadmin import DatabaseAdmin
from lobe.devtools.ports import free_port
from lobe.devtools.promql import metric_names
from lobe.devtools.provider_fixtures import load
from lobe.devtools.pytest_plugin import MakeUpstream
from lobe.devtools.servers import NodeExporter, PrometheusServer
from lobe.devtools.servers.binaries import debian_binary

from .test_lobe_dev import LobeDev

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lobe-overview.json"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "lobe.yml"
SCRAPE_S = 0.25
JOBS = {
    "gateway": "GATEWAY_OPS_PORT",  # its public port serves no /metrics
    "chat-worker": "CHAT_WORKER_OPS_PORT",
    "billing": "BILLING_OPS_PORT",
    "metrics": "METRICS_OPS_PORT",
}
MODEL = "gpt-4o-mini"  # routed to the fake upstream; the scenario's own provider/model pair
OTHER_MODEL = "mock"  # the built-in mock, for tests that must not touch MODEL's series
SUCCESSES, ERRORS = 6, 2
SUCCESS = load("openai/chat_stream_text.sse")
ERROR = load("openai/error_400_unsupported_value.json")
MESSAGES = [{"role": "user", "content": "What is the capital of the UK?"}]


@dataclass
class Observed:
    dev: LobeDev
    gateway: str
    billing: str
    api_key: str
    dsn: str
    upstream_port: int
    prometheus: PrometheusServer

    def target(self, job: str) -> str:
        return f"127.0.0.1:{self.dev.ports[JOBS[job]]}"

    async def query(self, expr: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.prometheus.query, expr)

    async def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """The query's result keyed by the given labels' values."""
        return {
            tuple(row["metric"].get(label, "") for label in labels): float(row["value"][1])
            for row in await self.query(expr)
        }

    async def chat(self, http: aiohttp.ClientSession, model: str, stream: bool) -> int:
        body = {"model": model, "messages": MESSAGES, "stream": stream}
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with http.post(f"{self.gateway}/v1/chat/completions", json=body, headers=headers) as response:
            await response.read()
            return response.status


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory, pg_server: DatabaseAdmin) -> Iterator[Observed]:
    state = tmp_path_factory.mktemp("observed")
    upstream_port = free_port()
    models = state / "models.yaml"
    deployment = {
        "name": "fake-openai",
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{upstream_port}/v1",
    }
    models.write_text(yaml.safe_dump({"models": [{"name": MODEL, "deployments": [deployment]}]}))
    database = pg_server.take("lobe_observed_")
    dsn = pg_server.dsn(database)
    env = {
        "MODELS_FILE": str(models),
        "DATABASE_URL": dsn,
        "METRICS_LAG_INTERVAL_S": "0.5",
        "OPENAI_API_KEY": "sk-fake",
    }
    dev = LobeDev(state / "dev", env)
    try:
        ready = dev.wait_ready()
        scrape = {job: [f"127.0.0.1:{dev.ports[var]}"] for job, var in JOBS.items()}
        with NodeExporter() as node:
            scrape["node"] = [node.target]
            with PrometheusServer(scrape, interval_s=SCRAPE_S, rule_files=[RULES]) as prometheus:
                billing = f"http://127.0.0.1:{dev.ports['BILLING_OPS_PORT']}"
                yield Observed(dev, ready.group(2), billing, ready.group(3), dsn, upstream_port, prometheus)
    finally:
        dev.proc.send_signal(signal.SIGTERM)
        try:
            dev.proc.wait(30)
        except subprocess.TimeoutExpired:
            dev.kill()
        pg_server.drop(database)


@pytest.fixture
async def observed_upstream(observed: Observed, make_upstream: MakeUpstream) -> FakeUpstream:
    """The fake provider at the port the observed suite's routing names."""
    return await make_upstream(port=observed.upstream_port)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, f"never true: {what}"
        await asyncio.sleep(SCRAPE_S / 2)


async def until_value(observed: Observed, expr: str, expected: float) -> None:
    async def equal() -> bool:
        result = await observed.query(expr)
        return len(result) == 1 and float(result[0]["value"][1]) == expected

    await eventually(equal, f"{expr} == {expected}")


def panel_exprs(title: str) -> list[str]:
    """A dashboard panel's queries as Prometheus runs them for 'All' over a 5-minute step."""
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"] == title]
    substitutions = {"$__rate_interval": "5m", "$provider": ".*", "$model": ".*"}
    exprs = []
    for target in panel["targets"]:
        expr = target["expr"]
        for variable, value in substitutions.items():
            expr = expr.replace(variable, value)
        exprs.append(expr)
    return exprs


async def ledger(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def hold_a_stream_open(observed: Observed, http: aiohttp.ClientSession, upstream: FakeUpstream) -> None:
    """An answer that stalls after its first words: one SSE connection open until the client leaves."""
    first_events = [m.end() for m in re.finditer(rb"\n\n", SUCCESS.body)][2]
    upstream.push(SUCCESS.reply(split_events=True, hold_after=first_events))
    body = {"model": MODEL, "messages": MESSAGES, "stream": True}
    headers = {"Authorization": f"Bearer {observed.api_key}"}
    response = await http.post(f"{observed.gateway}/v1/chat/completions", json=body, headers=headers)
    assert response.status == 200
    assert b'"content":"The' in await response.content.readuntil(
        b"\n\n" * 1
    ) + await response.content.readuntil(b"\n\n")
    await until_value(observed, panel_exprs("Active streaming connections")[0], 1)
    await until_value(observed, "sum(lobe_worker_streams_active)", 1)
    response.close()  # the client leaves: the gateway cancels the worker, which records "cancelled"
    await until_value(observed, panel_exprs("Active streaming connections")[0], 0)
    await until_value(observed, "sum(lobe_worker_streams_active)", 0)


async def test_the_seed_queries_report_the_driven_workload_exactly(
    observed: Observed, observed_upstream: FakeUpstream
) -> None:
    async with aiohttp.ClientSession() as http:
        # 1. A stream held open: the gauge reads 1 while it is, and 0 once the client has left.
        await hold_a_stream_open(observed, http, observed_upstream)
        by_status = f'sum by (status) (lobe_chat_requests_total{{model="{MODEL}"}})'

        async def pair_at_zero() -> bool:
            return await observed.values(by_status, "status") == {
                ("cancelled",): 1, ("success",): 0, ("error",): 0, ("cache_hit",): 0,
            }  # fmt: skip

        await eventually(pair_at_zero, "the pair's series scraped at 0")

        # 2. N successes and M errors, streamed and not.
        outcomes = [SUCCESS] * SUCCESSES + [ERROR] * ERRORS
        outcomes.insert(2, outcomes.pop())  # an error amid the successes
        statuses = []
        for i, transcript in enumerate(outcomes):
            observed_upstream.push(transcript.reply(seed=i))
            statuses.append(await observed.chat(http, MODEL, stream=i % 2 == 0))
        assert sorted(statuses) == [200] * SUCCESSES + [400] * ERRORS

        async def all_counted() -> bool:
            counted = await observed.values(by_status, "status")
            return counted[("success",)] == SUCCESSES and counted[("error",)] == ERRORS

        await eventually(all_counted, "every request counted")

        # 3. The success rate, as the dashboard asks for it, is exactly N/(N+M)·100. The seed's
        # literal expression divides each series by itself (one-to-one matching on all labels):
        # 100 for every pair with a success, whatever the errors; hence the dashboard's sums.
        (success_rate,) = panel_exprs("Chat success rate")
        (result,) = await observed.query(success_rate)
        assert float(result["value"][1]) == pytest.approx(100 * SUCCESSES / (SUCCESSES + ERRORS), abs=1e-9)
        literal = (
            "rate(lobe_chat_requests_total{status='success'}[5m]) / rate(lobe_chat_requests_total[5m]) * 100"
        )
        assert {float(r["value"][1]) for r in await observed.query(literal)} == {100.0}

        # 4. Token usage by provider: the counter holds exactly what the ledger holds.
        async def ledger_complete() -> bool:
            rows = await ledger(
                observed.dsn, f"SELECT count(*) AS n FROM usage_ledger WHERE model = '{MODEL}'"
            )
            return int(rows[0]["n"]) == 1 + SUCCESSES + ERRORS

        await eventually(ledger_complete, "billing wrote every request")
        rows = await ledger(
            observed.dsn,
            "SELECT provider, sum(prompt_tokens) AS input, sum(completion_tokens) AS output "
            "FROM usage_ledger GROUP BY provider",
        )
        in_ledger = {(r["provider"], kind): float(r[kind]) for r in rows for kind in ("input", "output")}

        async def tokens_match() -> bool:
            counted = await observed.values(
                "sum by (provider, type) (lobe_message_tokens_total)", "provider", "type"
            )
            return {k: v for k, v in counted.items() if k[0] == "openai"} == {
                k: v for k, v in in_ledger.items() if k[0] == "openai"
            }

        await eventually(tokens_match, f"lobe_message_tokens_total == ledger {in_ledger}")
        (tokens_panel,) = panel_exprs("Token usage by provider")
        rates = await observed.values(tokens_panel, "provider", "type")
        assert rates[("openai", "input")] > 0
        assert rates[("openai", "output")] > 0

        # 5. The HTTP histogram counts every request by route template, gateway and billing API
        # (asked twice, with a scrape between: a series' first sample is no rate).
        usage_route = 'sum(lobe_http_request_duration_seconds_count{job="billing", route="/v1/usage"})'
        for calls in (1, 2):
            async with http.get(
                f"{observed.billing}/v1/usage", headers={"Authorization": f"Bearer {observed.api_key}"}
            ) as response:
                assert response.status == 200
            await until_value(observed, usage_route, calls)
        expected_codes = {("200",): SUCCESSES, ("400",): ERRORS, ("499",): 1}  # 499: the client left

        async def requests_counted() -> bool:
            expr = 'sum by (status_code) (lobe_http_request_duration_seconds_count{job="gateway", route="/v1/chat/completions"})'
            return await observed.values(expr, "status_code") == expected_codes

        await eventually(requests_counted, f"gateway requests by status {expected_codes}")
        # One more, now that the series has been scraped, so its rate cannot be all in its first sample.
        assert await observed.chat(http, OTHER_MODEL, stream=False) == 200
        expected_codes[("200",)] += 1
        await eventually(requests_counted, f"gateway requests by status {expected_codes}")
        (http_rate,) = panel_exprs("HTTP request rate")
        routes = await observed.values(http_rate, "method", "route")
        assert routes[("POST", "/v1/chat/completions")] > 0
        assert routes[("GET", "/v1/usage")] > 0  # billing's API, same histogram
        assert not {route for _, route in routes} & {"/metrics", "/api/health", "/health/ready"}

        # 6. The database histogram has counts for what was driven: ingest, budget holds, reports.
        async def statements_counted() -> bool:
            counts = await observed.values(
                "sum by (operation, table) (lobe_database_query_duration_seconds_count)", "operation", "table"
            )
            driven = {("copy", "usage_ledger"), ("insert", "usage_periods"), ("select", "usage_rollups")}
            return all(counts.get(key, 0) > 0 for key in driven)

        await eventually(statements_counted, "COPY, budget hold and report statements timed")
        (heatmap,) = panel_exprs("Database query performance")
        buckets = {row["metric"]["le"] for row in await observed.query(heatmap)}
        assert buckets == {"0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1.0", "+Inf"}


async def test_every_metrics_endpoint_passes_promtool_check_metrics(observed: Observed) -> None:
    async with aiohttp.ClientSession() as http:
        assert await observed.chat(http, OTHER_MODEL, stream=True) == 200  # labelled series exist
        promtool = debian_binary("promtool", "prometheus")
        for job in JOBS:
            async with http.get(f"http://{observed.target(job)}/metrics") as response:
                exposition = await response.read()
            check = await asyncio.create_subprocess_exec(
                promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
            )
            output, _ = await check.communicate(exposition)
            assert check.returncode == 0, f"{job}: {output.decode()}"


async def test_the_suite_exports_every_series_the_dashboard_and_alerts_read(observed: Observed) -> None:
    async with aiohttp.ClientSession() as http:
        assert await observed.chat(http, OTHER_MODEL, stream=True) == 200
        # A media request, for the media units' series (created on first use).
        image = {"model": OTHER_MODEL, "prompt": "a red fox"}
        headers = {"Authorization": f"Bearer {observed.api_key}"}
        async with http.post(f"{observed.gateway}/v1/images/generations", json=image, headers=headers) as r:
            assert r.status == 200, await r.text()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] if p["type"] != "row" for t in p["targets"]]
    rules = yaml.safe_load(RULES.read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    wanted = {name for expr in exprs for name in metric_names(expr)}

    async def all_there() -> bool:
        return wanted <= await asyncio.to_thread(observed.prometheus.series_names)

    # The cost counter appears once billing has written the mock request's row.
    await eventually(all_there, f"Prometheus holds {sorted(wanted)}")
    assert await observed.values("lobe_user_sessions_active", "job") == {("gateway",): 0}  # nobody signed in
    assert await observed.values("lobe_worker_max_concurrency", "job") == {("chat-worker",): 256}
    lag = await observed.values("lobe:jetstream_consumer_lag:messages", "stream", "consumer")
    assert set(lag) == {("USAGE", "billing"), ("USAGE", "metrics"), ("EVENTS", "metrics")}
    for expr in panel_exprs("System resources"):
        (value,) = (await observed.values(expr, "instance")).values()
        assert 0 <= value <= 100, expr
