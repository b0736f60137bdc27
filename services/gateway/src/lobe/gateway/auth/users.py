"""Users belong to billing: the gateway asks it, over the bus, which user a signed-in identity is
(`auth.user.resolve`; billing creates the user on the first sign-in)."""

from __future__ import annotations

import uuid

from lobe.gateway.auth.identity import Identity, SignInRefused
from lobe.shared.bus import Bus
from lobe.shared.events.auth import AUTH_USER_RESOLVE, UserResolve, UserResolved


async def resolve_user(bus: Bus, identity: Identity, timeout_s: float) -> UserResolved:
    question = UserResolve(
        request_id=uuid.uuid4().hex,
        provider=identity.provider,
        subject=identity.subject,
        email=identity.email,
    )
    reply = await bus.request(AUTH_USER_RESOLVE, question, timeout_s)
    if not isinstance(reply, UserResolved):  # unanswered, or unreadable (logged by the bus)
        raise SignInRefused("users_unavailable", "Sign-in is unavailable right now; retry shortly.", 503)
    return reply
