"""What the rest of the code asks the catalog: concrete subjects, the entry a subject belongs to,
the durable consumers, the public contracts and their JSON Schemas."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from lobe.shared.catalog.entries import CATALOG
from lobe.shared.catalog.model import Subject, type_name
from lobe.shared.chat_schema import ChatCompletionRequest

BY_SUBJECT = {entry.subject: entry for entry in CATALOG}


def subject(pattern: str, **tokens: str | int) -> str:
    """The concrete subject of a catalogued pattern: `subject(CHAT_CANCEL, worker_id="w1")`.

    The one way to build a subject that has variable tokens, so what crosses the bus is what the
    catalog (and the AsyncAPI document generated from it) says. KeyError for an uncatalogued
    pattern; ValueError for a missing or extra token, or a value that is not one token.
    """
    try:
        entry = BY_SUBJECT[pattern]
    except KeyError:
        raise KeyError(f"subject pattern {pattern!r} is not in the event catalog") from None
    return entry.format(tokens)


def lookup(subject: str) -> Subject:
    """The entry a concrete subject belongs to; KeyError names the unknown subject."""
    for entry in CATALOG:
        if entry.matches(subject):
            return entry
    raise KeyError(f"subject {subject!r} is not in the event catalog")


def durable_consumers() -> tuple[tuple[str, str], ...]:
    """Every (stream, durable consumer) pair the catalog wires up, sorted: the consumers whose lag
    the metrics service reports."""
    pairs = {
        (entry.stream.name, consumer.group)
        for entry in CATALOG
        if entry.stream is not None
        for consumer in entry.consumers
        if consumer.group is not None
    }
    return tuple(sorted(pairs))


def contract_models() -> dict[str, Any]:
    """Every type whose JSON Schema is a public contract, by snapshot name."""
    models: dict[str, Any] = {}
    for entry in CATALOG:
        for payload in (entry.payload, entry.reply):
            if payload is not None:
                models[type_name(payload)] = payload
    models["ChatCompletionRequest"] = ChatCompletionRequest
    return dict(sorted(models.items()))


def json_schema(payload: Any) -> dict[str, Any]:
    """The validation-mode JSON Schema of a payload: what a consumer of it accepts."""
    schema: dict[str, Any] = TypeAdapter(payload).json_schema(mode="validation")
    return schema
