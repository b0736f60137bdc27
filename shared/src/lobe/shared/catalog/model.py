"""What a catalog entry is: a subject, its payload, who publishes and consumes it, how it is
delivered; the services that appear in it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel

from lobe.shared.events import chat
from lobe.shared.events.envelope import Event
from lobe.shared.events.streams import StreamSpec

GATEWAY = "gateway"
CHAT_WORKER = "chat-worker"
BILLING = "billing"
METRICS = "metrics"
SERVICES = (GATEWAY, CHAT_WORKER, BILLING, METRICS)

Kind = Literal["command", "fact", "reply"]


class Delivery(StrEnum):
    CORE = "core"
    REQUEST_REPLY = "request-reply"
    JETSTREAM = "jetstream"


DELIVERY_TEXT = {
    Delivery.CORE: "core NATS, at-most-once (lost if no subscriber is connected)",
    Delivery.REQUEST_REPLY: "core NATS request-reply, at-most-once; no responders fails the request at once",
    Delivery.JETSTREAM: "JetStream, at-least-once; duplicates dropped by Nats-Msg-Id",
}


@dataclass(frozen=True)
class Consumer:
    """A consuming service. `group` is its queue group (core NATS) or durable consumer (JetStream);
    None means every instance receives every message (fan-out, or a per-request subscription)."""

    service: str
    group: str | None = None
    note: str = ""


@dataclass(frozen=True)
class ObjectBucket:
    """A JetStream Object Store bucket services hand large payloads through (lobe.shared.bus.objects):
    its stream `OBJ_<name>` holds the chunks (`$O.<name>.C.<nuid>`) and each object's meta message
    (`$O.<name>.M.<name, base64>`). `writers` put objects (and remove one they failed to hand
    over); `readers` read them and delete each once used. Nobody else may touch the bucket."""

    name: str
    writers: tuple[str, ...]
    readers: tuple[str, ...]
    description: str
    ttl_s: int  # an object nobody deleted (its reader lost) expires after this long

    @property
    def stream(self) -> str:
        return f"OBJ_{self.name}"

    @property
    def subjects(self) -> str:
        return f"$O.{self.name}.>"

    @property
    def meta_subjects(self) -> str:
        return f"$O.{self.name}.M.>"


# A value inside a subject is one token: no separator, no wildcard, no whitespace.
_TOKEN = re.compile(r"[A-Za-z0-9_@:+=-]+")
_PARAM = re.compile(r"<([a-z_]+)>")


@dataclass(frozen=True)
class Subject:
    subject: str
    payload: Any  # a pydantic model class, an annotated union of them (reply frames), or None: empty body
    kind: Kind
    delivery: Delivery
    producers: tuple[str, ...]
    consumers: tuple[Consumer, ...]
    description: str
    reply: Any = None  # the model answering a request-reply command
    stream: StreamSpec | None = None
    # Nats-Msg-Id template for JetStream publishes, formatted with the event's fields. Distinct per
    # subject of a stream: the duplicate window is stream-wide, so two subjects sharing an id would
    # drop each other's messages.
    msg_id: str | None = None

    @property
    def payload_name(self) -> str:
        return type_name(self.payload)

    @property
    def schema_version(self) -> int:
        return schema_version_of(self.payload)

    @property
    def is_pattern(self) -> bool:
        return "<" in self.subject

    @cached_property
    def parameters(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.subject))

    @cached_property
    def _template(self) -> str:
        return _PARAM.sub(r"{\1}", self.subject)

    def format(self, tokens: Mapping[str, str | int]) -> str:
        if set(tokens) != set(self.parameters):
            raise ValueError(f"{self.subject} takes tokens {self.parameters}, got {tuple(tokens)}")
        values = {name: str(value) for name, value in tokens.items()}
        for name, value in values.items():
            if not _TOKEN.fullmatch(value):
                raise ValueError(f"{self.subject}: <{name}> must be one subject token, got {value!r}")
        return self._template.format(**values)

    @property
    def wildcard(self) -> str:
        """The subject as a NATS subscription (`chat.reply.*`)."""
        return ".".join("*" if t.startswith("<") else t for t in self.subject.split("."))

    def matches(self, subject: str) -> bool:
        """Whether a concrete subject (or a NATS wildcard subscription over it) is this entry."""
        ours, theirs = self.subject.split("."), subject.split(".")
        if theirs and theirs[-1] == ">":
            return len(ours) >= len(theirs) and _tokens_match(ours[: len(theirs) - 1], theirs[:-1])
        return len(ours) == len(theirs) and _tokens_match(ours, theirs)

    def nats_msg_id(self, event: BaseModel) -> str:
        if self.msg_id is None:
            raise ValueError(f"{self.subject} is not published to JetStream; it has no Nats-Msg-Id")
        return self.msg_id.format(**{name: getattr(event, name) for name in type(event).model_fields})


def _tokens_match(ours: list[str], theirs: list[str]) -> bool:
    return all(o == t or o.startswith("<") or t == "*" for o, t in zip(ours, theirs, strict=True))


def type_name(payload: Any) -> str:
    if payload is None:
        return "empty"
    if isinstance(payload, type):
        return payload.__name__
    return "ReplyFrame" if payload is chat.ReplyFrame else repr(payload)


def schema_version_of(payload: Any) -> int:
    if isinstance(payload, type) and issubclass(payload, Event):
        default = payload.model_fields["schema_version"].default
        return int(default)
    return 1  # reply frames carry no envelope; their version is the chat protocol's
