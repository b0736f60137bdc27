"""The generated AsyncAPI document covers the whole catalog."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lobe.shared.catalog import CATALOG, type_name
from lobe.shared.catalog.__main__ import DEFAULT_ROOT
from lobe.shared.catalog.asyncapi import address, build_asyncapi, channel_key


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_asyncapi()


def test_document_is_asyncapi_3(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["defaultContentType"] == "application/json"


def test_every_producer_and_consumer_has_an_operation(document: dict[str, Any]) -> None:
    operations = document["operations"]
    for entry in CATALOG:
        sends = {
            k
            for k, op in operations.items()
            if op["action"] == "send" and _address(document, op) == address(entry)
        }
        receives = {
            k
            for k, op in operations.items()
            if op["action"] == "receive" and _address(document, op) == address(entry)
        }
        assert len(sends) == len(entry.producers), entry.subject
        assert len(receives) == len(entry.consumers), entry.subject


def test_channels_carry_the_payload_schema_and_delivery_facts(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for entry in CATALOG:
        if entry.payload is not None and isinstance(entry.payload, type):
            assert entry.payload_name in schemas, entry.subject
        channels = [
            c for c in document["channels"].values() if c.get("x-lobe", {}).get("subject") == entry.subject
        ]
        assert channels, entry.subject
        for channel in channels:
            assert channel["x-lobe"]["delivery"] == entry.delivery.value
            assert channel["x-lobe"]["stream"] == (entry.stream.name if entry.stream else None)


def test_pattern_subjects_declare_their_parameter(document: dict[str, Any]) -> None:
    channel = document["channels"]["chat.reply.request_id.offer:gateway:receive"]
    assert channel["address"] == "chat.reply.{request_id}.{offer}"
    assert set(channel["parameters"]) == {"request_id", "offer"}


def test_request_reply_operations_name_their_reply(document: dict[str, Any]) -> None:
    for entry in CATALOG:
        if entry.reply is None:
            continue
        for consumer in entry.consumers:
            op = document["operations"][channel_key(entry, consumer.service, "receive")]
            reply_channel = op["reply"]["channel"]["$ref"].rsplit("/", 1)[-1]
            message_ref = document["channels"][reply_channel]["messages"]["Message"]["$ref"]
            message = document["components"]["messages"][message_ref.rsplit("/", 1)[-1]]
            assert message["payload"]["$ref"].endswith(f"/{type_name(entry.reply)}")


def test_committed_asyncapi_is_valid_json_with_resolvable_refs() -> None:
    document = json.loads((DEFAULT_ROOT / "docs/asyncapi.json").read_text())
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict), ref


def _address(document: dict[str, Any], operation: dict[str, Any]) -> str:
    name = operation["channel"]["$ref"].rsplit("/", 1)[-1]
    return str(document["channels"][name]["address"])


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
