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


class UserExistsError(BillingError):
    """`create_user` named an existing user with another plan or e-mail: creating is not changing
    (a script's typo must not move an admin's plan or hand their address to someone else)."""

    def __init__(self, user_id: str, differs: dict[str, tuple[str | None, str]]) -> None:
        said = ", ".join(f"{field} {now!r} (not {wanted!r})" for field, (now, wanted) in differs.items())
        hint = " (set-plan changes a plan)" if "plan" in differs else ""
        super().__init__(f"user {user_id!r} exists with {said}; left unchanged{hint}")
        self.user_id = user_id
        self.differs = differs


class UnknownPlanError(BillingError):
    """An admin operation named a plan the plans file (PLANS_FILE) does not define."""

    def __init__(self, plan: str, known: list[str]) -> None:
        super().__init__(f"plan {plan!r} is not one of {known}")
        self.plan = plan
        self.known = known


class NotAnnouncedError(BillingError):
    """An admin change is committed but its fact could not be published (JetStream unreachable):
    gateways act on their cached answer for up to KEY_CACHE_TTL_S. Every operation that raises it
    is idempotent, so running it again announces it."""

    def __init__(self, subject: str, ident: str) -> None:
        super().__init__(
            f"{ident!r} changed, but {subject} could not be published: gateways may act on the "
            "old state until their key cache expires; run the same operation again"
        )
        self.subject = subject
        self.ident = ident


class DeadlinePassedError(BillingError):
    """A budget reserve reached billing after the gateway stopped waiting for it: nothing is held
    (no one would release it) and nothing is answered."""

    def __init__(self, request_id: str) -> None:
        super().__init__(f"budget reserve {request_id!r} arrived after its deadline; nothing held")
        self.request_id = request_id


class ResetContendedError(BillingError):
    """A usage reset found the user's period closed by another reset every time it tried (that
    many admins resetting one user at once): nothing changed this time."""

    def __init__(self, user_id: str, attempts: int) -> None:
        super().__init__(f"usage of {user_id!r} was being reset by others {attempts} times in a row; retry")
        self.user_id = user_id
        self.attempts = attempts
