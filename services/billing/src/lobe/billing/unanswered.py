"""Commands billing leaves unanswered on purpose, and the one log line each gets.

A command that does not decode into its model, a reserve that arrived after the gateway stopped
waiting, a database that is away: billing says nothing, and the gateway applies its fail mode
(BUDGET_FAIL_MODE; for keys, its cached answer or 503). Any other failure is a bug: it is logged
with its traceback, and unanswered too. Either way the responder goes on with the next command.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, TypeVar

import asyncpg
from faststream import Context
from faststream.middlewares import ExceptionMiddleware
from pydantic import BaseModel, ValidationError

from lobe.billing.errors import DeadlinePassedError, MalformedCommandError

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
DATABASE_AWAY = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
UNANSWERED = (MalformedCommandError, DeadlinePassedError, *DATABASE_AWAY)


def decode(model: type[M], subject: str, body: bytes) -> M:
    """Straight from JSON into the model; a body that does not fit is a MalformedCommandError,
    told apart from the handler's own errors."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedCommandError(subject, exc.errors(include_url=False)[:3]) from exc


def log_unanswered(subject: str, exc: Exception) -> None:
    if isinstance(exc, DATABASE_AWAY):
        log.error("%s not answered, the database is unavailable: %r", subject, exc)
    else:
        log.warning("%s; not answered", exc, extra={"request_id": getattr(exc, "request_id", None)})


def _on_unanswered(exc: Exception, message: Annotated[Any, Context("message")]) -> None:
    raw = getattr(message, "raw_message", message)  # nats.py's own message when decoding failed
    log_unanswered(raw.subject, exc)


# For FastStream subscribers: the same log line, and no reply (the exception ends the handler
# before FastStream would publish one; suppressed here, FastStream does not log it again).
UNANSWERED_MIDDLEWARE = ExceptionMiddleware(handlers=dict.fromkeys(UNANSWERED, _on_unanswered))
