"""The event catalog: every subject on the bus, as data.

This is the single source of truth the documentation (docs/events.md, docs/asyncapi.json), the
contract snapshots and the drift tests are generated from. Subjects and models stay defined in
their domain modules (lobe.shared.events.*); this module only says how they are wired: who
publishes, who consumes under which queue group or durable consumer, and with what guarantee.

Pattern subjects name their variable tokens in angle brackets (`chat.reply.<request_id>.<offer>`);
services build concrete subjects only through `subject()`, which refuses an uncatalogued pattern,
a missing or extra token, and a value that is not a single NATS token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events import auth, billing, cache, chat, lifecycle, routing, usage
from lobe.shared.events.envelope import Event
from lobe.shared.events.streams import BILLING_CONSUMER, EVENTS, METRICS_CONSUMER, USAGE, StreamSpec

GATEWAY = "gateway"
CHAT_WORKER = "chat-worker"
BILLING = "billing"
METRICS = "metrics"
SERVICES = (GATEWAY, CHAT_WORKER, BILLING, METRICS)

Kind = Literal["command", "fact", "reply"]

# The catalog's own version: the minor moves on a compatible change, the major when a subject is
# removed or its shape changes (a subscriber following the old document would miss messages).
CATALOG_VERSION = "3.2.0"
CHANGELOG: tuple[tuple[str, str], ...] = (
    (
        "3.2.0",
        "`chat.models` answers list, per model, the upstreams (provider, upstream model) it may "
        "reach through its deployments and fallbacks (`reaches`); billing asks it too and prices "
        "budget holds at the dearest of them. On the USAGE stream a worker's `usage.recorded` "
        "supersedes a `usage.reported` for the same request whatever the order they arrive in, and a "
        "`cache_hit` report counts only for a request billing admitted as one (else `usage.dead`).",
    ),
    (
        "3.1.0",
        "Gateways also end a user's sessions when they hear `billing.account.changed` (each session "
        "carries the role and plan it was signed with): every live session of the user is revoked as "
        "an admin's revoke does it, each one an `auth.login.ended` (reason `revoked`). Payloads unchanged.",
    ),
    (
        "3.0.0",
        "`usage.recorded` is published by chat workers only. The usage the gateway records itself "
        "(a request whose worker was lost mid-answer, a cached answer) moves to `usage.reported` "
        "(same payload, same stream), so each service's NATS user may publish only what the catalog "
        "gives it and the gateway's cannot forge a worker's usage. A consumer that counts every "
        "request reads both subjects (billing and metrics do, with one durable consumer each).",
    ),
    (
        "2.4.0",
        "`served_model` on `usage.recorded` and on the usage frame: the model the provider was asked "
        "for (a deployment's upstream model, after any fallback). Billing prices by it, so an answer "
        "a fallback served is charged at the price of the model that served it.",
    ),
    (
        "2.3.0",
        "Routing made visible: the first delta, the done and the error frame carry an optional `route` "
        "(deployment, provider, public model, attempts), the error frame an optional `retry_after_s`, and "
        "`usage.recorded` an optional `attempts`. New facts `routing.breaker.opened`, "
        "`routing.breaker.half_opened` and `routing.breaker.closed` (EVENTS). Chat workers also ask "
        "`billing.price.quote` (the lowest-cost routing strategy).",
    ),
    (
        "2.2.0",
        "Optional `rate_tier` on the chat request's `caller` and on KeyVerified (billing's effective "
        "rate-limit tier for the key's owner); optional `cache_hit` on PriceQuote; "
        "`cache.response.invalidated` (gateway to every gateway replica).",
    ),
    (
        "2.1.0",
        "Sign-in: `auth.user.resolve` (gateway asks billing which user an identity is, creating it on "
        "the first sign-in) and the session facts `auth.login.succeeded`, `auth.login.failed` (now "
        "published, on every refused sign-in) and `auth.login.ended` (sign-out or revocation; every "
        "gateway replica refuses the session from then on). `billing.account.changed`: a user's "
        "plan, limits or role changed; gateways drop that user's cached callers.",
    ),
    (
        "2.0.0",
        "Reply frames go to `chat.reply.<request_id>.<offer>` (one subject per hand-over; the "
        "document said `chat.reply.<request_id>`, which no frame ever used). Cancels go to the worker "
        "that accepted the request, `chat.cancel.<worker_id>`, instead of every worker. The reset "
        "frame is gone: answers restart only before their first delta. `usage.settled` (published, "
        "never consumed) and `auth.login.failed` (catalogued, never published) are removed.",
    ),
    ("1.0.0", "First published catalog."),
)


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

    def format(self, tokens: dict[str, str | int]) -> str:
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


_METRICS = Consumer(METRICS, METRICS_CONSUMER)
_EVENT_ID = "{event_id}"

CATALOG: tuple[Subject, ...] = (
    Subject(
        subject=chat.CHAT_REQUEST,
        payload=chat.ChatRequested,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(Consumer(CHAT_WORKER, chat.CHAT_WORKER_QUEUE, "one worker of the group takes it"),),
        reply=chat.AcceptedFrame,
        description="Run this chat completion and stream the answer to `reply_to`. The worker that "
        "takes it answers the request with an AcceptedFrame within a second.",
    ),
    Subject(
        subject=chat.CHAT_REPLY,
        payload=chat.ReplyFrame,
        kind="reply",
        delivery=Delivery.CORE,
        producers=(CHAT_WORKER,),
        consumers=(Consumer(GATEWAY, None, "the instance that sent the request, per-request subscription"),),
        description="The answer, as frames: deltas, heartbeats, at most one usage frame, then exactly one "
        "terminal frame (done or error). `seq` reveals gaps and reorders. `offer` numbers the gateway's "
        "hand-overs of the request: a re-dispatched request gets a new reply subject, so frames of a "
        "worker presumed dead never mix into the answer.",
    ),
    Subject(
        subject=chat.CHAT_CANCEL,
        payload=chat.ChatCancelled,
        kind="command",
        delivery=Delivery.CORE,
        producers=(GATEWAY,),
        consumers=(Consumer(CHAT_WORKER, None, "the worker named by the subject, its own subscription"),),
        description="The client went away: the worker that accepted `request_id` (its AcceptedFrame "
        "named it) stops the provider call.",
    ),
    Subject(
        subject=chat.CHAT_MODELS,
        payload=None,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY, BILLING),
        consumers=(Consumer(CHAT_WORKER, chat.CHAT_WORKER_QUEUE, "any worker answers"),),
        reply=chat.ModelList,
        description="A query with an empty body: which models do the workers serve (GET /v1/models), "
        "and which upstreams each may reach (billing prices budget holds at the dearest).",
    ),
    Subject(
        subject=usage.USAGE_RECORDED,
        payload=usage.UsageRecorded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=USAGE,
        msg_id="{request_id}",
        producers=(CHAT_WORKER,),
        consumers=(Consumer(BILLING, BILLING_CONSUMER, "acked after the ledger commit"), _METRICS),
        description="A chat request ended; exactly one per request, whatever the outcome (or one "
        "`usage.reported` instead, when the worker was lost mid-answer or the cache answered).",
    ),
    Subject(
        subject=usage.USAGE_REPORTED,
        payload=usage.UsageRecorded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=USAGE,
        msg_id="reported:{request_id}",
        producers=(GATEWAY,),
        consumers=(
            Consumer(BILLING, BILLING_CONSUMER, "the durable consumer of usage.recorded, one ledger"),
            _METRICS,
        ),
        description="Usage the gateway records itself, when no worker will: a request whose worker was "
        "lost mid-answer (what the client received, estimated), or a cached answer (`cache_hit`). "
        "Billing keeps one usage per request across this subject and `usage.recorded` (its unique "
        "key); it accepts here only what a gateway reports, and dead-letters anything else.",
    ),
    Subject(
        subject=usage.USAGE_DEAD_LETTER,
        payload=usage.UsageDeadLetter,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=USAGE,
        msg_id="dead:{stream_sequence}",
        producers=(BILLING,),
        consumers=(),
        description="A usage message billing could not process (malformed), kept verbatim for operators "
        "to inspect and replay.",
    ),
    Subject(
        subject=billing.BILLING_LIMIT_EXCEEDED,
        payload=billing.LimitExceeded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(_METRICS,),
        description="A user hit one of their plan's limits for the period.",
    ),
    Subject(
        subject=billing.BILLING_PRICE_MISSING,
        payload=billing.PriceMissing,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(),
        description="Usage for a model with no price; it was priced by the default.",
    ),
    Subject(
        subject=billing.BILLING_ACCOUNT_CHANGED,
        payload=billing.AccountChanged,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(
            Consumer(
                GATEWAY,
                None,
                "every replica drops the user's cached callers and revokes the user's sessions "
                "(each an `auth.login.ended`)",
            ),
        ),
        description="A user's plan, limits or role changed: the next request is admitted under the new "
        "ones, and the user's sessions (which carry the role and plan) end.",
    ),
    Subject(
        subject=billing.BUDGET_RESERVE,
        payload=billing.BudgetReserve,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=billing.BudgetDecision,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Hold the worst-case cost of a request before dispatch; answered with a BudgetDecision.",
    ),
    Subject(
        subject=billing.BUDGET_RELEASE,
        payload=billing.BudgetRelease,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="The request never reached a provider: free its hold. No reply model; the "
        "answer only confirms receipt.",
    ),
    Subject(
        subject=billing.PRICE_QUOTE,
        payload=billing.PriceQuote,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=billing.PriceQuoted,
        producers=(GATEWAY, CHAT_WORKER),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Price a usage at today's prices: the gateway for a finished request's final chunk "
        "(the same cost billing records when the usage event arrives), chat workers for the price per "
        "token of each deployment (the lowest-cost routing strategy; cached).",
    ),
    Subject(
        subject=auth.AUTH_KEY_VERIFY,
        payload=auth.KeyVerify,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=auth.KeyVerified,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Resolve an API key (by its SHA-256) to its user and plan; the gateway caches answers.",
    ),
    Subject(
        subject=auth.AUTH_KEY_ISSUED,
        payload=auth.ApiKeyIssued,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(),
        description="An API key was issued (audit).",
    ),
    Subject(
        subject=auth.AUTH_KEY_REVOKED,
        payload=auth.ApiKeyRevoked,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(Consumer(GATEWAY, None, "every replica drops the key from its cache"),),
        description="An API key was revoked; caches must drop it.",
    ),
    *(
        Subject(
            subject=breaker_subject,
            payload=routing.BreakerChanged,
            kind="fact",
            delivery=Delivery.JETSTREAM,
            stream=EVENTS,
            msg_id=_EVENT_ID,
            producers=(CHAT_WORKER,),
            consumers=(),
            description=description,
        )
        for breaker_subject, description in (
            (
                routing.ROUTING_BREAKER_OPENED,
                "A deployment failed too often within its window (or its probe failed): no worker sends "
                "it traffic during the cooldown.",
            ),
            (
                routing.ROUTING_BREAKER_HALF_OPENED,
                "A deployment's cooldown ended: one worker sends it one probe request.",
            ),
            (
                routing.ROUTING_BREAKER_CLOSED,
                "A deployment's probe succeeded: every worker routes to it again.",
            ),
        )
    ),
    Subject(
        subject=cache.CACHE_RESPONSE_INVALIDATED,
        payload=cache.ResponsesInvalidated,
        kind="fact",
        delivery=Delivery.CORE,
        producers=(GATEWAY,),
        consumers=(Consumer(GATEWAY, None, "every replica drops the matching answers it holds in memory"),),
        description="An admin invalidated cached answers (all, one user's, one model's); the replica "
        "that took the admin call has cleared the shared Redis tier already.",
    ),
    Subject(
        subject=auth.AUTH_USER_RESOLVE,
        payload=auth.UserResolve,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=auth.UserResolved,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Someone signed in: which user is this identity? Billing (the owner of users) finds "
        "it by provider identity, else by e-mail, else creates it on the default plan, and answers the "
        "user's id, role, plan and rate tier for the session's claims.",
    ),
    Subject(
        subject=auth.AUTH_LOGIN_SUCCEEDED,
        payload=auth.LoginSucceeded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(GATEWAY,),
        consumers=(),
        description="A user signed in and got a session (audit).",
    ),
    Subject(
        subject=auth.AUTH_LOGIN_FAILED,
        payload=auth.LoginFailed,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(GATEWAY,),
        consumers=(),
        description="A sign-in was refused, with the reason (audit). Never carries an address, a code "
        "or a token.",
    ),
    Subject(
        subject=auth.AUTH_LOGIN_ENDED,
        payload=auth.LoginEnded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(GATEWAY,),
        consumers=(Consumer(GATEWAY, None, "every replica refuses the session from then on"),),
        description="A session ended before its expiry: signed out, or revoked by an admin. Redis keeps "
        "the revoked set for replicas that start later.",
    ),
    Subject(
        subject=lifecycle.SERVICE_STARTED,
        payload=lifecycle.ServiceLifecycle,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=SERVICES,
        consumers=(),
        description="A service instance started (`request_id` is the instance id).",
    ),
    Subject(
        subject=lifecycle.SERVICE_STOPPED,
        payload=lifecycle.ServiceLifecycle,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=SERVICES,
        consumers=(),
        description="A service instance stopped cleanly.",
    ),
)

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
