"""The NATS permissions generated from the catalog give each service what the catalog says, and no more."""

from __future__ import annotations

import pytest

from lobe.shared.catalog import BILLING, BUCKETS, CATALOG, CHAT_WORKER, GATEWAY, METRICS, SERVICES, Delivery
from lobe.shared.catalog.permissions import ADMIN, PRINCIPALS, permissions, users
from lobe.shared.events.billing import BUDGET_RESERVE
from lobe.shared.events.streams import ALL_STREAMS
from lobe.shared.events.usage import USAGE_RECORDED, USAGE_REPORTED


def test_every_catalogued_producer_may_publish_its_subject_and_nobody_else_may() -> None:
    for entry in CATALOG:
        for service in SERVICES:
            allowed = entry.wildcard in permissions(service).publish
            assert allowed == (service in entry.producers), (entry.subject, service)


def test_core_consumers_subscribe_in_their_queue_group_and_durable_consumers_use_the_consumer_api() -> None:
    for entry in CATALOG:
        for consumer in entry.consumers:
            granted = permissions(consumer.service)
            if entry.stream is not None and consumer.group is not None:
                stream, durable = entry.stream.name, consumer.group
                assert f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}" in granted.publish
                assert f"$JS.ACK.{stream}.{durable}.>" in granted.publish
                assert entry.wildcard not in {s.split(" ")[0] for s in granted.subscribe}
            else:
                queue = f" {consumer.group}" if consumer.group else ""
                assert entry.wildcard + queue in granted.subscribe, (entry.subject, consumer)


def test_only_responders_may_answer_requests() -> None:
    responders = {c.service for e in CATALOG if e.delivery is Delivery.REQUEST_REPLY for c in e.consumers}
    assert responders == {CHAT_WORKER, BILLING}
    for principal in PRINCIPALS:
        assert permissions(principal).allow_responses == (principal in responders), principal


def test_the_issues_cases_gateway_cannot_record_usage_nor_answer_billing_worker_cannot_reserve() -> None:
    gateway, worker = permissions(GATEWAY), permissions(CHAT_WORKER)
    assert USAGE_RECORDED not in gateway.publish
    assert USAGE_REPORTED in gateway.publish
    billings_commands = [e.subject for e in CATALOG if any(c.service == BILLING for c in e.consumers)]
    assert {"auth.key.verify", BUDGET_RESERVE} <= set(billings_commands)
    assert not {s.split(" ")[0] for s in gateway.subscribe} & set(billings_commands)
    assert not gateway.allow_responses
    assert BUDGET_RESERVE not in worker.publish


BUCKET_STREAMS = {b.stream for b in BUCKETS}


def test_nobody_gets_a_wildcard_over_the_bus_or_jetstream_nor_may_delete_or_purge() -> None:
    """Purging is deleting an object of a bucket (its chunks), on that bucket's stream only."""
    for principal in PRINCIPALS:
        granted = permissions(principal)
        for subject in (*granted.publish, *granted.subscribe):
            assert subject.split(" ")[0] not in {">", "*", "$JS.API.>", "$JS.>", "_INBOX.>", "$O.>"}, (
                principal
            )
            assert ".DELETE." not in subject, principal
            if ".PURGE." in subject:
                assert subject.rsplit(".", 1)[1] in BUCKET_STREAMS, (principal, subject)


def test_a_bucket_is_written_and_read_by_the_services_the_catalog_names_and_nobody_else() -> None:
    for bucket in BUCKETS:
        for principal in PRINCIPALS:
            granted = permissions(principal).publish
            on_bucket = [s for s in granted if bucket.stream in s or s.startswith(f"$O.{bucket.name}.")]
            writes, reads = principal in bucket.writers, principal in bucket.readers
            assert (bucket.subjects in granted) == writes, (bucket.name, principal)
            assert (f"$JS.API.CONSUMER.MSG.NEXT.{bucket.stream}.*" in granted) == reads, (
                bucket.name,
                principal,
            )
            assert bool(on_bucket) == (writes or reads), (bucket.name, principal)
    assert METRICS not in {s for b in BUCKETS for s in (*b.writers, *b.readers)}


def test_each_principal_reads_replies_only_under_its_own_inbox_prefix() -> None:
    for principal in PRINCIPALS:
        inboxes = [s for s in permissions(principal).subscribe if s.startswith("_INBOX")]
        assert inboxes == [f"_INBOX.{principal}.>"]


def test_only_billing_and_the_operator_may_reconfigure_the_streams() -> None:
    for principal in PRINCIPALS:
        updates = {s for s in permissions(principal).publish if ".STREAM.UPDATE." in s}
        expected = {f"$JS.API.STREAM.UPDATE.{s.name}" for s in ALL_STREAMS}
        assert updates == (expected if principal in (BILLING, ADMIN) else set()), principal
    assert not any(".CONSUMER." in s for s in permissions(ADMIN).publish)
    # The gateway reads no stream but a bucket's objects (images too large for a reply).
    consumer_calls = [s for s in permissions(GATEWAY).publish if ".CONSUMER." in s]
    assert consumer_calls
    assert all(any(f".{stream}" in s for stream in BUCKET_STREAMS) for s in consumer_calls)
    assert any("CONSUMER.INFO.EVENTS.metrics" in s for s in permissions(METRICS).publish)


def test_server_users_carry_the_generated_permissions_and_given_passwords() -> None:
    [entry] = users({GATEWAY: "$GATEWAY_PASSWORD"})
    assert entry["user"] == GATEWAY
    assert entry["password"] == "$GATEWAY_PASSWORD"
    assert entry["permissions"]["publish"]["allow"] == list(permissions(GATEWAY).publish)
    assert "allow_responses" not in entry["permissions"]


def test_an_unknown_principal_has_no_permissions() -> None:
    with pytest.raises(KeyError, match="not a service"):
        permissions("intruder")
