"""The catalog's version and what each version changed (docs/events.md renders it)."""

from __future__ import annotations

# The catalog's own version: the minor moves on a compatible change, the major when a subject is
# removed or its shape changes (a subscriber following the old document would miss messages).
CATALOG_VERSION = "3.11.0"
CHANGELOG: tuple[tuple[str, str], ...] = (
    (
        "3.11.0",
        "`billing.budget.lease` (gateway to the `billing` queue group, request-reply): budget leases, "
        "wants and returns batched in one `LeaseAsk`, answered with `LeaseGrants` (each lease's size "
        "in requests, tokens and cost, its term, the model's hold rate and today's prices of its "
        "upstreams). `lease` (the lease id and the request's worst case) on `chat.request`, "
        "`embeddings.request`, `usage.recorded` and `usage.reported`: a request admitted under a "
        "lease, settled against it when its usage is written. Absent: an exact hold, as before.",
    ),
    (
        "3.10.0",
        "`deltas` frames on `chat.reply.<request_id>.<offer>`: the deltas a worker has ready "
        "together (produced within one turn of its event loop) in one message, each with its own "
        "`seq`; the frame's `seq` is the first delta's. A delta ready alone still goes out as a "
        "`delta` frame at once, and readers accept both.",
    ),
    (
        "3.9.0",
        "`auth.key.issue`, `auth.key.list` and `auth.key.revoke` (gateway to the `billing` queue "
        "group, request-reply): a signed-in user's own API keys (`/v1/keys`, the web console), "
        "with a per-plan cap on live keys (`max_api_keys` in the plans file). The `chat.models` "
        "reply lists each model's `deployments` with their health now (breaker, in flight, TTFT, "
        "limits, headroom); an older worker's reply without it reads as an empty list.",
    ),
    (
        "3.8.0",
        "`images.request`, `speech.request` (its audio on `speech.audio.<request_id>`) and "
        "`transcription.request` (the file in the Object Store bucket MEDIA): gateway to the "
        "`chat-worker` queue group, request-reply. `units` on `usage.recorded` and `usage.reported` "
        "(images with size and quality, characters, audio seconds) and on `billing.budget.reserve` "
        "(the hold's upper bound): what a media request is priced by. The Object Store bucket "
        "MEDIA is catalogued (`BUCKETS`: the gateway and the chat workers write and read it; the "
        "NATS permissions follow): uploads, and images too large for the reply, whose "
        "`b64_object` names the object holding their b64_json.",
    ),
    (
        "3.7.0",
        "`endpoint` on `chat.request` (`chat` or `responses`; absent: chat): POST /v1/responses is "
        "translated to a chat request at the gateway, and the worker refuses a model whose `serves` "
        "lacks the endpoint (404 `model_not_supported`) and records its usage as `kind: response`.",
    ),
    (
        "3.6.0",
        "`billing.usage.reset` (EVENTS): an admin reset a user's usage (`lobe admin reset-usage`, "
        "`POST /v1/admin/users/{user_id}/reset-usage`); the current period closed and a new one "
        "opened (`2026-11.1`), from which the user's limits count. `period` in "
        "`billing.limit.exceeded` may now name such a period.",
    ),
    (
        "3.5.0",
        "Usage counts say who counted them apart from what they cover: `source` (`provider` or "
        "`estimated`) on `usage` in the usage frame and `usage.recorded`, beside `basis` (a "
        "cancelled answer's stays `partial`); an event without it reads as before (`estimated` "
        "when `basis` says so, else `provider`). `usage.recorded` also carries the caller's `plan`, "
        "the request's `max_output_tokens` and, on a cancelled request, its deployment's "
        "`disconnect_billing`, from which billing prices a cancelled request per its policy.",
    ),
    (
        "3.4.0",
        "A gateway offers several sign-in providers at once, so `provider` on `auth.user.resolve`, "
        "`auth.login.succeeded` and `auth.login.failed` is the provider's configured name (`oidc`, "
        "`google`, `github` or a name of the gateway's OIDC_PROVIDERS: lowercase letters, digits and "
        "`_`) rather than one of `oidc` and `github`. Billing keys identities by (provider, subject) "
        "as before; the payloads are otherwise unchanged.",
    ),
    (
        "3.3.0",
        "`embeddings.request` (gateway to the `chat-worker` queue group, request-reply, answered "
        "with an EmbeddingsAnswer): POST /v1/embeddings. `kind` on `usage.recorded` and "
        "`usage.reported` (chat, embedding, image, speech, transcription, response): the endpoint "
        "a usage is for, which says its unit; an event without it is a chat's.",
    ),
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
