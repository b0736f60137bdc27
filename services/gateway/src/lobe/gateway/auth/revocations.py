"""Revoked sessions, as each gateway replica checks them: in memory, on every request, with no
round trip. Why this and not a Redis lookup per request: authentication stays as fast as the
signature check and keeps working while Redis is away, and revocation still reaches every replica
within milliseconds, because the replica that revokes writes Redis first and then publishes
`auth.login.ended`, which every replica applies at once. Redis is the durable copy: a replica
loads it at start (after subscribing, so nothing falls in between) and again every few seconds,
which also covers a fact lost while a replica was cut off from NATS. Until its first load succeeds
a replica does not know what was revoked before it started: it reports not ready (`synced`), and
retries every second instead of every few.

A session carries the role and plan it was signed with, so when billing announces that a user's
account changed (`billing.account.changed`: role, plan or limits) every replica ends that user's
sessions the same way an admin's revoke does: a demoted admin, or a user moved to another plan,
signs in again and gets claims that say so. Every replica hears the fact and ends the sessions
(idempotent), so one replica cut off from NATS does not keep them alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from lobe.gateway.auth.sessions import SessionStore
from lobe.gateway.metrics import SESSIONS_ACTIVE
from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.shared.bus import Bus
from lobe.shared.events.auth import AUTH_LOGIN_ENDED, LoginEnded, SessionEndReason
from lobe.shared.events.billing import BILLING_ACCOUNT_CHANGED, AccountChanged

log = logging.getLogger(__name__)
SYNC_INTERVAL_S = 5.0
FIRST_SYNC_RETRY_S = 1.0


class RevokedSessions:
    def __init__(self, store: SessionStore, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        self._until: dict[str, int] = {}  # session id -> its expiry, after which it is moot
        self._task: asyncio.Task[None] | None = None
        self.synced = False  # Redis' revoked set has been loaded at least once

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._until

    def add(self, session_id: str, expires_at: int) -> None:
        self._until[session_id] = expires_at

    async def end(self, user_id: str, session_id: str, expires_at: int, reason: SessionEndReason) -> None:
        """Sign-out or revocation: Redis first (RedisError when it is away: nothing changed), then
        this replica, then every other one through the fact."""
        await self.store.ended(user_id, session_id, expires_at)
        self.add(session_id, expires_at)
        event = LoginEnded(
            request_id=session_id,
            user_id=user_id,
            session_id=session_id,
            expires_at=expires_at,
            reason=reason,
        )
        # Lost for good, the fact only delays the other replicas until their next sync.
        await self.bus.publish_fact(AUTH_LOGIN_ENDED, event, attempts=3)

    async def end_all(self, user_id: str, reason: SessionEndReason) -> list[str]:
        """End every live session of the user; their ids. RedisError (or OSError) when Redis is away."""
        live = await self.store.of_user(user_id)
        for session_id, expires_at in live.items():
            await self.end(user_id, session_id, expires_at, reason)
        return sorted(live)

    async def start(self) -> None:
        await self.bus.subscribe(AUTH_LOGIN_ENDED, self._on_ended)
        await self.bus.subscribe(BILLING_ACCOUNT_CHANGED, self._on_account_changed)
        await self.sync()
        self._task = asyncio.create_task(self._sync_forever(), name="gateway-session-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_ended(self, event: LoginEnded) -> None:
        self.add(event.session_id, event.expires_at)

    async def _on_account_changed(self, event: AccountChanged) -> None:
        try:
            ended = await self.end_all(event.user_id, "revoked")
        except REDIS_ERRORS as exc:
            # Another replica may have reached Redis; if none did, an admin revokes by hand.
            log.error(
                "sessions of a changed account not revoked, Redis unavailable: %r",
                exc,
                extra={"user_id": event.user_id},
            )
            return
        if ended:
            log.info(
                "account changed: sessions revoked", extra={"user_id": event.user_id, "count": len(ended)}
            )

    async def sync(self) -> None:
        """Merge Redis' revoked set, forget what expired, and refresh the sessions gauge."""
        try:
            self._until.update(await self.store.revoked())
            self.synced = True
            SESSIONS_ACTIVE.set(await self.store.active_count())
        except REDIS_ERRORS as exc:
            log.warning("sessions: Redis unavailable, revocations known so far still apply: %r", exc)
        now = time.time()
        for session_id, expires_at in list(self._until.items()):
            if expires_at < now:
                del self._until[session_id]

    async def _sync_forever(self) -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL_S if self.synced else FIRST_SYNC_RETRY_S)
            await self.sync()
