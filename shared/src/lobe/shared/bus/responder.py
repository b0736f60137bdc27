"""What `responds` does with one command, the same on NATS and in memory: decode the body into the
catalog's payload model, call the handler, encode what it returns, all inside the command's span
(lobe.shared.bus.tracing: the asker's trace goes on); and the catalog's rules for what is left
unanswered.

Unanswered on purpose (a request-reply asker treats silence as an answer and applies its fail
mode; docs/architecture.md): a body that does not decode (unless the handler's `malformed` turns
it into a reply), and any exception the handler raises. `Unanswered` and the types in `quiet` are
expected (logged by `on_unanswered`, one line); anything else is a bug, logged with its traceback.
Either way the responder goes on with the next command.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel, TypeAdapter, ValidationError

from lobe.shared.bus.tracing import answering
from lobe.shared.catalog import Subject
from lobe.shared.catalog.api import BY_SUBJECT

log = logging.getLogger(__name__)

Headers = Mapping[str, str] | None
Handler = Callable[..., Any]  # (request[, headers]) -> reply model | None, sync or async
Malformed = Callable[[ValidationError], BaseModel]
OnUnanswered = Callable[[str, Exception], None]


class Unanswered(Exception):
    """Raised by a handler to leave a command unanswered on purpose; logged as a warning."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class MalformedError(Unanswered):
    """A command whose body does not decode into its catalogued model."""

    def __init__(self, subject: str, errors: list[Any]) -> None:
        super().__init__(f"malformed {subject}: {errors}")
        self.subject = subject
        self.errors = errors


def log_unanswered(subject: str, exc: Exception) -> None:
    log.warning("%s; not answered", exc, extra={"request_id": getattr(exc, "request_id", None)})


@dataclass(frozen=True)
class Rules:
    """How one responder treats what it cannot answer."""

    quiet: tuple[type[Exception], ...] = ()
    on_unanswered: OnUnanswered = log_unanswered
    malformed: Malformed | None = None


def decoder(entry: Subject) -> Callable[[bytes], Any]:
    """Bytes into the entry's payload model (or union of models: the reply frames), one pass (no
    dict in between); an empty body for an entry that carries none."""
    model = entry.payload
    if model is None:
        return _nothing
    if isinstance(model, type) and issubclass(model, BaseModel):
        validate: Callable[[bytes], Any] = model.model_validate_json
        return validate
    return _union_decoder(entry.subject)


@cache
def _union_decoder(subject: str) -> Callable[[bytes], Any]:
    # Built once per subject: a TypeAdapter takes milliseconds to build, and a reply stream
    # (one per hand-over) asks for its decoder each time.
    validate: Callable[[bytes], Any] = TypeAdapter(BY_SUBJECT[subject].payload).validate_json
    return validate


def _nothing(_: bytes) -> None:
    return None


def encode(reply: BaseModel | None) -> bytes:
    # An answered command whose handler returns nothing (a release) is answered with an empty body.
    return b"" if reply is None else reply.model_dump_json().encode()


Process = Callable[[str, bytes, Headers], Awaitable[bytes | None]]


def processor(entry: Subject, handler: Handler, rules: Rules, with_headers: bool) -> Process:
    """One command's bytes to its reply's bytes, or None: unanswered. Built once per subscription,
    so nothing is looked up per message."""
    decode = decoder(entry)
    takes_payload = entry.payload is not None
    is_async = inspect.iscoroutinefunction(handler)
    expected: tuple[type[Exception], ...] = (Unanswered, *rules.quiet)

    async def process(subject: str, data: bytes, headers: Headers) -> bytes | None:
        with answering(entry, subject, headers) as span:
            try:
                request = decode(data)
            except ValidationError as exc:
                span.set_attribute("error.type", "malformed")
                if rules.malformed is not None:
                    log.error("malformed %s: %s", subject, exc.errors(include_url=False)[:3])
                    return encode(rules.malformed(exc))
                rules.on_unanswered(subject, MalformedError(subject, exc.errors(include_url=False)[:3]))
                return None
            args: tuple[Any, ...] = (request,) if takes_payload else ()
            if with_headers:
                args = (*args, headers)
            try:
                reply = await handler(*args) if is_async else handler(*args)
            except expected as exc:
                span.set_attribute("error.type", type(exc).__name__)
                rules.on_unanswered(subject, exc)
                return None
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR))
                log.exception(
                    "%s failed; not answered",
                    subject,
                    extra={"request_id": getattr(request, "request_id", None)},
                )
                return None
            return encode(reply)

    return process
