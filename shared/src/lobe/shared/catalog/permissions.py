"""Each service's NATS permissions, generated from the event catalog: least privilege on the bus.

A service's NATS user may publish what the catalog says it produces and subscribe to what it
consumes, plus what NATS itself needs for exactly that, and nothing else:
- Replies arrive under the service's own inbox prefix (`_INBOX.<service>.>`, see
  lobe.shared.bus.inbox_prefix): answers to its requests, JetStream acks, fetched messages. No
  other user may read them. Answering a request it received is `allow_responses` (one reply to
  that request's inbox), never a publish permission on another service's inbox.
- A command keeps its queue group: billing may subscribe to `billing.budget.reserve` in queue
  group `billing` only, so nothing can quietly take commands off the group.
- JetStream: every service declares the suite's streams at start (INFO, CREATE: harmless once
  they exist); only their owner, billing, and the operator may UPDATE them; nobody may delete or
  purge them. A durable consumer's API subjects and `$JS.ACK.<stream>.<durable>.>` belong to the
  service the catalog names as that consumer; metrics may also read every durable's info (its
  consumer-lag gauges, lobe.metrics.lag).
- State a service keeps in JetStream for itself, not events (the chat workers' routing store: a
  KV bucket and a counter stream, lobe.chat_worker.routing.store): that service alone, wholly.
- An Object Store bucket of the catalog (`BUCKETS`): its writers publish chunks and meta messages
  to `$O.<bucket>.>`; its readers read the chunks through an ephemeral pull consumer of their own
  and delete what they used (a meta marker on `$O.<bucket>.M.>` and a purge). Both find (writers
  also create) the bucket's stream and look up an object's meta message. Any other service has
  no subject of the bucket and no API call on its stream.

The NATS server configuration (`lobe dev`, the test harness, deploy/nats/values.yaml) is built
from `users()`; tests/e2e/test_bus_matches_catalog.py runs the suite under these users and fails
on any permission violation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lobe.shared.catalog import (
    BILLING,
    BUCKETS,
    CATALOG,
    CHAT_WORKER,
    METRICS,
    SERVICES,
    Delivery,
    durable_consumers,
)
from lobe.shared.events.streams import ALL_STREAMS, EVENTS

# `lobe admin` and `lobe dev`'s set-up: billing's admin operations, run by an operator.
ADMIN = "admin"
PRINCIPALS = (*SERVICES, ADMIN)
# The service that brings existing streams to the catalog's configuration (ensure_streams owner=True).
STREAMS_OWNER = BILLING
JS_API = "$JS.API"
# Streams a service keeps its own state in (stream, the subjects stored in it). A test holds the
# chat workers' to lobe.chat_worker.routing.store, which lobe.shared cannot import.
PRIVATE_STREAMS: dict[str, tuple[tuple[str, str], ...]] = {
    CHAT_WORKER: (
        ("KV_LOBE_ROUTING", "$KV.LOBE_ROUTING.>"),
        ("LOBE_ROUTING_COUNTERS", "$COUNTERS.LOBE_ROUTING.>"),
    ),
}


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool

    def server_config(self) -> dict[str, Any]:
        """The `permissions` block of a user in the nats-server configuration."""
        config: dict[str, Any] = {
            "publish": {"allow": list(self.publish)},
            "subscribe": {"allow": list(self.subscribe)},
        }
        if self.allow_responses:
            config["allow_responses"] = True
        return config


def permissions(principal: str) -> Permissions:
    """What `principal` (a service of the catalog, or ADMIN) may do on the bus."""
    if principal not in PRINCIPALS:
        raise KeyError(f"{principal!r} is not a service of the event catalog nor {ADMIN!r}")
    publish: list[str] = [*_stream_management(principal)]
    subscribe: list[str] = [f"_INBOX.{principal}.>"]
    if principal == ADMIN:
        # Billing's admin operations, run from a terminal, announce their changes as billing does.
        publish += [e.wildcard for e in CATALOG if e.producers == (BILLING,) and e.stream == EVENTS]
        return Permissions(tuple(publish), tuple(subscribe), allow_responses=False)
    for stream, stored in PRIVATE_STREAMS.get(principal, ()):
        publish += [stored, *_private_stream(stream)]
    publish += _buckets(principal)
    if principal == METRICS:
        publish += [f"{JS_API}.CONSUMER.INFO.{stream}.{durable}" for stream, durable in durable_consumers()]
    answers = False
    for entry in CATALOG:
        if principal in entry.producers:
            publish.append(entry.wildcard)
        for consumer in entry.consumers:
            if consumer.service != principal:
                continue
            answers = answers or entry.delivery is Delivery.REQUEST_REPLY
            if entry.stream is not None and consumer.group is not None:
                publish += _durable_consumer(entry.stream.name, consumer.group)
            else:
                queue = f" {consumer.group}" if consumer.group else ""
                subscribe.append(entry.wildcard + queue)
    return Permissions(tuple(_unique(publish)), tuple(_unique(subscribe)), answers)


def users(passwords: Mapping[str, str]) -> list[dict[str, Any]]:
    """nats-server `authorization.users`: one user per principal named in `passwords`, each with
    its permissions. A password may be a literal or a `$VARIABLE` the server reads from its
    environment (deploy/nats/values.yaml)."""
    return [
        {"user": name, "password": password, "permissions": permissions(name).server_config()}
        for name, password in passwords.items()
    ]


def _stream_management(principal: str) -> list[str]:
    verbs = ("INFO", "CREATE", "UPDATE") if principal in (STREAMS_OWNER, ADMIN) else ("INFO", "CREATE")
    return [f"{JS_API}.STREAM.{verb}.{spec.name}" for spec in ALL_STREAMS for verb in verbs]


def _durable_consumer(stream: str, durable: str) -> list[str]:
    """Create (every form clients use), inspect and fetch from one durable consumer; ack its messages."""
    return [
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}",
        f"{JS_API}.CONSUMER.CREATE.{stream}.{durable}.>",
        f"{JS_API}.CONSUMER.INFO.{stream}.{durable}",
        f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _buckets(principal: str) -> list[str]:
    """What lobe.shared.bus.objects does on each bucket `principal` writes or reads."""
    granted: list[str] = []
    for bucket in BUCKETS:
        writes, reads = principal in bucket.writers, principal in bucket.readers
        if not (writes or reads):
            continue
        stream = bucket.stream
        granted += [f"{JS_API}.STREAM.INFO.{stream}", f"{JS_API}.STREAM.MSG.GET.{stream}"]
        granted.append(f"{JS_API}.STREAM.PURGE.{stream}")  # a failed put's chunks; a delete's
        if writes:
            granted += [f"{JS_API}.STREAM.CREATE.{stream}", bucket.subjects]
        if reads:
            granted += [
                bucket.meta_subjects,  # the delete marker
                f"{JS_API}.CONSUMER.CREATE.{stream}",
                f"{JS_API}.CONSUMER.CREATE.{stream}.>",
                f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
                f"$JS.ACK.{stream}.>",
            ]
    return granted


def _private_stream(stream: str) -> list[str]:
    """Everything on a stream of the service's own: manage it, read it, watch and count with it."""
    return [
        f"{JS_API}.STREAM.*.{stream}",
        f"{JS_API}.STREAM.MSG.*.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}",
        f"{JS_API}.DIRECT.GET.{stream}.>",
        f"{JS_API}.CONSUMER.*.{stream}",
        f"{JS_API}.CONSUMER.*.{stream}.>",
        f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.>",
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


# -- the official NATS Helm chart -------------------------------------------------------------------
NATS_USERS_SECRET = "lobe-nats-users"  # in the NATS namespace; one key per principal: its password


def password_variable(principal: str) -> str:
    """The environment variable the NATS server reads `principal`'s password from."""
    return "LOBE_NATS_PASSWORD_" + principal.upper().replace("-", "_")


def nats_chart_values() -> dict[str, Any]:
    """Values for the official NATS chart: the users and their permissions, each password read from
    the NATS_USERS_SECRET Secret into the server's environment (`<< $VAR >>` is the chart's way to
    write a configuration variable unquoted)."""
    passwords = {p: f"<< ${password_variable(p)} >>" for p in PRINCIPALS}
    env = {
        password_variable(p): {"valueFrom": {"secretKeyRef": {"name": NATS_USERS_SECRET, "key": p}}}
        for p in PRINCIPALS
    }
    return {"config": {"merge": {"authorization": {"users": users(passwords)}}}, "container": {"env": env}}
