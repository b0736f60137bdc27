"""Commands billing leaves unanswered on purpose, and the one log line each gets.

A command that does not decode into its model, a reserve that arrived after the gateway stopped
waiting, a database that is away: billing says nothing, and the gateway applies its fail mode
(BUDGET_FAIL_MODE; for keys, its cached answer or 503). Any other failure is a bug: the bus logs
it with its traceback, and leaves it unanswered too (lobe.shared.bus.responder). Either way the
responder goes on with the next command.
"""

from __future__ import annotations

import logging

import asyncpg

from lobe.billing.errors import DeadlinePassedError

log = logging.getLogger(__name__)
DATABASE_AWAY = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
UNANSWERED = (DeadlinePassedError, *DATABASE_AWAY)


def log_unanswered(subject: str, exc: Exception) -> None:
    if isinstance(exc, DATABASE_AWAY):
        log.error("%s not answered, the database is unavailable: %r", subject, exc)
    else:
        log.warning("%s; not answered", exc, extra={"request_id": getattr(exc, "request_id", None)})
