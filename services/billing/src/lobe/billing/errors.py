"""Billing's exceptions: each carries the fields an operator needs to act on it."""

from __future__ import annotations


class BillingError(Exception):
    """Base of every error raised by lobe.billing."""


class MigrationError(BillingError):
    """A migration failed or was edited after it ran; the schema is not what the code expects."""

    def __init__(self, migration: str, reason: str) -> None:
        super().__init__(f"migration {migration}: {reason}")
        self.migration = migration
        self.reason = reason


class NotFoundError(BillingError):
    """An admin operation named a user or key that does not exist."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident
