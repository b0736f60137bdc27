"""Users belong to billing: the gateway asks it, over the bus, which user a signed-in identity is
(`auth.user.resolve`; billing creates the user on the first sign-in)."""

from __future__ import annotations

import uuid

from nats.aio.client import Client as NATS
from pydantic import ValidationError

from lobe.gateway.auth.identity import Identity, SignInRefused
from lobe.shared.bus import ask
from lobe.shared.events.auth import AUTH_USER_RESOLVE, UserResolve, UserResolved


async def resolve_user(nc: NATS, identity: Identity, timeout_s: float) -> UserResolved:
    question = UserResolve(
        request_id=uuid.uuid4().hex,
        provider=identity.provider,
        subject=identity.subject,
        email=identity.email,
    )
    reply = await ask(nc, AUTH_USER_RESOLVE, question.encode(), timeout_s)
    unavailable = SignInRefused("users_unavailable", "Sign-in is unavailable right now; retry shortly.", 503)
    if reply is None:
        raise unavailable
    try:
        return UserResolved.decode(reply)
    except ValidationError:
        raise unavailable from None
