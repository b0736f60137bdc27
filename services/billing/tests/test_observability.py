"""Billing's telemetry: every statement timed with bounded labels, the cost counter fed from
what the ledger wrote, and one span per ingested batch linked to each request's trace, whose own
span for its part of the batch links back."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from lobe.billing.budgets import _HOLD
from lobe.billing.db_metrics import billing_tables, classify
from lobe.billing.holds import FREE_HOLDS
from lobe.billing.ledger import _CLAIM
from lobe.billing.service import BillingService
from lobe.shared.bus import publish_fact
from lobe.shared.events.streams import USAGE
from lobe.shared.events.usage import USAGE_RECORDED

from .support import fetchval, usage_event, wait_for, wait_for_ledger

QUERIES = "lobe_database_query_duration_seconds"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (_HOLD, ("insert", "usage_periods")),  # the budget hold: its first write decides
        (_CLAIM, ("insert", "usage_request_ids")),
        (FREE_HOLDS, ("delete", "reservations")),
        ("SELECT provider, model FROM usage_rollups WHERE user_id = $1", ("select", "usage_rollups")),
        ("SELECT k.id FROM api_keys k JOIN users u ON u.id = k.user_id", ("select", "api_keys")),
        ("UPDATE users SET plan = $2 WHERE id = $1", ("update", "users")),
        ("SELECT lobe_ensure_usage_partition($1)", ("select", "none")),
        ("BEGIN;", ("transaction", "none")),
        ("SELECT typname FROM pg_catalog.pg_type", ("select", "other")),  # asyncpg's introspection
        ("INSERT INTO somebody_elses_table VALUES (1)", ("insert", "other")),
        ("CREATE TABLE x (a int)", ("other", "none")),
    ],
)
def test_statements_are_labelled_by_verb_and_one_of_billings_tables(
    sql: str, expected: tuple[str, str]
) -> None:
    assert classify(sql) == expected


def test_billings_tables_come_from_its_migrations() -> None:
    assert {"usage_ledger", "usage_rollups", "usage_periods", "reservations", "users"} <= billing_tables()


def query_counts() -> dict[tuple[str, str], float]:
    return {
        (s.labels["operation"], s.labels["table"]): s.value
        for family in REGISTRY.collect()
        if family.name == QUERIES
        for s in family.samples
        if s.name == f"{QUERIES}_count"
    }


async def test_ingest_and_reports_are_timed_with_bounded_labels_and_cost_is_counted(
    billing: BillingService, nats_url: str, billing_db: str
) -> None:
    before = query_counts()
    cost = {"provider": "mock", "model": "mock"}
    cost_before = REGISTRY.get_sample_value("lobe_chat_cost_usd_total", cost) or 0.0
    nc = await nats.connect(nats_url)
    for i in range(3):
        await publish_fact(nc.jetstream(), USAGE_RECORDED, usage_event(f"timed-{i}"))
    await nc.close()
    await wait_for_ledger(billing_db, 3)
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{billing.ops_port}/v1/usage"
        async with http.get(url, headers={"Authorization": "Bearer lobe-sk-nobody"}) as response:
            assert response.status == 401  # the key lookup ran, and was timed, all the same

    after = query_counts()
    grew = {key for key, count in after.items() if count > before.get(key, 0.0)}
    assert {("copy", "usage_ledger"), ("insert", "usage_request_ids"), ("select", "api_keys")} <= grew
    assert {table for _, table in after} <= billing_tables() | {"none", "other"}
    assert {operation for operation, _ in after} <= {
        "select", "insert", "update", "delete", "copy", "transaction", "other",
    }  # fmt: skip
    ledger = Decimal(await fetchval(billing_db, "SELECT sum(cost_usd) FROM usage_ledger"))
    counted = (REGISTRY.get_sample_value("lobe_chat_cost_usd_total", cost) or 0.0) - cost_before
    assert counted == pytest.approx(float(ledger), rel=1e-9)


async def test_each_ingested_batch_is_a_span_linked_to_every_request_it_carries(
    billing: BillingService, nats_url: str, billing_db: str, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")
    nc = await nats.connect(nats_url)
    requests = []
    for i in range(2):
        with tracer.start_as_current_span(f"request {i}") as span:  # as a worker's chat.run would
            await publish_fact(nc.jetstream(), USAGE_RECORDED, usage_event(f"traced-{i}"))
            requests.append(span.get_span_context())
    await nc.close()
    await wait_for_ledger(billing_db, 2)

    def named(name: str) -> list[ReadableSpan]:
        return [s for s in spans.get_finished_spans() if s.name == name]

    async def settled_both() -> bool:
        return len(named(f"process {USAGE_RECORDED}")) == 2 and len(named("ledger write")) >= 1

    await wait_for(settled_both)
    published = {s.context.span_id: s for s in named(f"send {USAGE_RECORDED}")}
    batches = {s.context.span_id: s for s in named(f"process {USAGE.name}")}
    # A batch is a trace of its own: it carries many requests, so it belongs to none of them.
    assert all(b.kind is SpanKind.CONSUMER and b.parent is None for b in batches.values())
    linked = {(link.context.trace_id, link.context.span_id) for b in batches.values() for link in b.links}
    assert {(p.context.trace_id, p.context.span_id) for p in published.values()} <= linked
    # Each request's trace holds its part of a batch: the child of its publish, linked to the batch
    # whose child is the ledger write.
    for each in named(f"process {USAGE_RECORDED}"):
        assert each.parent is not None
        producer = published[each.parent.span_id]
        assert producer.context.trace_id in {r.trace_id for r in requests}
        [batch] = [batches[link.context.span_id] for link in each.links]
        assert any(
            w.parent is not None and w.parent.span_id == batch.context.span_id for w in named("ledger write")
        )
