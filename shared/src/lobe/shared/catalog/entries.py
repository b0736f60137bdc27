"""Every subject on the bus, as data: the catalog's entries, and the Object Store buckets."""

from __future__ import annotations

from lobe.shared.catalog.model import (
    BILLING,
    CHAT_WORKER,
    GATEWAY,
    METRICS,
    SERVICES,
    Consumer,
    Delivery,
    ObjectBucket,
    Subject,
)
from lobe.shared.events import (
    auth,
    billing,
    cache,
    chat,
    embeddings,
    leases,
    lifecycle,
    media,
    routing,
    usage,
)
from lobe.shared.events.streams import BILLING_CONSUMER, EVENTS, METRICS_CONSUMER, USAGE

_METRICS = Consumer(METRICS, METRICS_CONSUMER)
_EVENT_ID = "{event_id}"
_ONE_WORKER = Consumer(CHAT_WORKER, chat.CHAT_WORKER_QUEUE, "one worker of the group takes it")

CATALOG: tuple[Subject, ...] = (
    Subject(
        subject=chat.CHAT_REQUEST,
        payload=chat.ChatRequested,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(Consumer(CHAT_WORKER, chat.CHAT_WORKER_QUEUE, "one worker of the group takes it"),),
        reply=chat.AcceptedFrame,
        description="Run this chat completion and stream the answer to `reply_to`. The worker that "
        "takes it answers the request with an AcceptedFrame within a second.",
    ),
    Subject(
        subject=chat.CHAT_REPLY,
        payload=chat.ReplyFrame,
        kind="reply",
        delivery=Delivery.CORE,
        producers=(CHAT_WORKER,),
        consumers=(Consumer(GATEWAY, None, "the instance that sent the request, per-request subscription"),),
        description="The answer, as frames: deltas (one by one, or those ready together in one "
        "deltas frame), heartbeats, at most one usage frame, then exactly one terminal frame (done "
        "or error). `seq` reveals gaps and reorders. `offer` numbers the gateway's hand-overs of "
        "the request: a re-dispatched request gets a new reply subject, so frames of a worker "
        "presumed dead never mix into the answer.",
    ),
    Subject(
        subject=chat.CHAT_CANCEL,
        payload=chat.ChatCancelled,
        kind="command",
        delivery=Delivery.CORE,
        producers=(GATEWAY,),
        consumers=(Consumer(CHAT_WORKER, None, "the worker named by the subject, its own subscription"),),
        description="The client went away: the worker that accepted `request_id` (its AcceptedFrame "
        "named it) stops the provider call.",
    ),
    Subject(
        subject=chat.CHAT_MODELS,
        payload=None,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY, BILLING),
        consumers=(Consumer(CHAT_WORKER, chat.CHAT_WORKER_QUEUE, "any worker answers"),),
        reply=chat.ModelList,
        description="A query with an empty body: which models do the workers serve (GET /v1/models), "
        "and which upstreams each may reach (billing prices budget holds at the dearest).",
    ),
    Subject(
        subject=embeddings.EMBEDDINGS_REQUEST,
        payload=embeddings.EmbeddingsRequested,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(Consumer(CHAT_WORKER, chat.CHAT_WORKER_QUEUE, "one worker of the group takes it"),),
        reply=embeddings.EmbeddingsAnswer,
        description="Embed these inputs (POST /v1/embeddings). The worker routes it like a chat "
        "request, records its usage (`usage.recorded`, kind `embedding`), then answers with the "
        "vectors (base64 float32) or an error. No answer in time: the gateway fails the request.",
    ),
    Subject(
        subject=media.IMAGES_REQUEST,
        payload=media.ImagesRequested,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(_ONE_WORKER,),
        reply=media.ImagesAnswer,
        description="Generate these images (POST /v1/images/generations). The worker routes it like "
        "a chat request, records its usage (kind `image`, per image of its size and quality), then "
        "answers with the images or an error.",
    ),
    Subject(
        subject=media.SPEECH_REQUEST,
        payload=media.SpeechRequested,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(_ONE_WORKER,),
        reply=media.SpeechEnded,
        description="Speak this input (POST /v1/audio/speech): the audio goes to "
        "`speech.audio.<request_id>` as the provider sends it; the usage (kind `speech`, per "
        "character) is recorded, then the reply says how many chunks were sent, or the error.",
    ),
    Subject(
        subject=media.SPEECH_AUDIO,
        payload=media.SpeechChunk,
        kind="reply",
        delivery=Delivery.CORE,
        producers=(CHAT_WORKER,),
        consumers=(Consumer(GATEWAY, None, "the instance that sent the request, per-request subscription"),),
        description="A speech answer's audio, in numbered chunks (base64), before its SpeechEnded reply.",
    ),
    Subject(
        subject=media.TRANSCRIPTION_REQUEST,
        payload=media.TranscriptionRequested,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(_ONE_WORKER,),
        reply=media.TranscriptionAnswer,
        description="Transcribe the uploaded file waiting in the Object Store bucket MEDIA "
        "(POST /v1/audio/transcriptions). The worker streams it to the provider, deletes it, records "
        "the usage (kind `transcription`, per second), then answers with the transcript in the "
        "client's format.",
    ),
    Subject(
        subject=usage.USAGE_RECORDED,
        payload=usage.UsageRecorded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=USAGE,
        msg_id="{request_id}",
        producers=(CHAT_WORKER,),
        consumers=(Consumer(BILLING, BILLING_CONSUMER, "acked after the ledger commit"), _METRICS),
        description="A request (chat, embeddings, images, speech or transcription: `kind`) ended; exactly one per request, whatever "
        "the outcome (or one "
        "`usage.reported` instead, when the worker was lost mid-answer or the cache answered).",
    ),
    Subject(
        subject=usage.USAGE_REPORTED,
        payload=usage.UsageRecorded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=USAGE,
        msg_id="reported:{request_id}",
        producers=(GATEWAY,),
        consumers=(
            Consumer(BILLING, BILLING_CONSUMER, "the durable consumer of usage.recorded, one ledger"),
            _METRICS,
        ),
        description="Usage the gateway records itself, when no worker will: a request whose worker was "
        "lost mid-answer (what the client received, estimated), or a cached answer (`cache_hit`). "
        "Billing keeps one usage per request across this subject and `usage.recorded` (its unique "
        "key); it accepts here only what a gateway reports, and dead-letters anything else.",
    ),
    Subject(
        subject=usage.USAGE_DEAD_LETTER,
        payload=usage.UsageDeadLetter,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=USAGE,
        msg_id="dead:{stream_sequence}",
        producers=(BILLING,),
        consumers=(),
        description="A usage message billing could not process (malformed), kept verbatim for operators "
        "to inspect and replay.",
    ),
    Subject(
        subject=billing.BILLING_LIMIT_EXCEEDED,
        payload=billing.LimitExceeded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(_METRICS,),
        description="A user hit one of their plan's limits for the period.",
    ),
    Subject(
        subject=billing.BILLING_PRICE_MISSING,
        payload=billing.PriceMissing,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(),
        description="Usage for a model with no price; it was priced by the default.",
    ),
    Subject(
        subject=billing.BILLING_ACCOUNT_CHANGED,
        payload=billing.AccountChanged,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(
            Consumer(
                GATEWAY,
                None,
                "every replica drops the user's cached callers and revokes the user's sessions "
                "(each an `auth.login.ended`)",
            ),
        ),
        description="A user's plan, limits or role changed: the next request is admitted under the new "
        "ones, and the user's sessions (which carry the role and plan) end.",
    ),
    Subject(
        subject=billing.BILLING_USAGE_RESET,
        payload=billing.UsageReset,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(),
        description="An admin reset a user's usage: the current period closed and a new one opened, "
        "from which the user's limits count (audit; billing's own admission follows at once).",
    ),
    Subject(
        subject=billing.BUDGET_RESERVE,
        payload=billing.BudgetReserve,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=billing.BudgetDecision,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Hold the worst-case cost of a request before dispatch; answered with a BudgetDecision.",
    ),
    Subject(
        subject=billing.BUDGET_RELEASE,
        payload=billing.BudgetRelease,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="The request never reached a provider: free its hold. No reply model; the "
        "answer only confirms receipt.",
    ),
    Subject(
        subject=billing.BUDGET_LEASE,
        payload=leases.LeaseAsk,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=leases.LeaseGrants,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Budget leases, batched: grant each want a part of the user's remaining budget to "
        "admit requests against locally (or none: near a limit, the exact hold), and take back the "
        "unused part of each lease returned. Answered with LeaseGrants (docs/billing.md).",
    ),
    Subject(
        subject=billing.PRICE_QUOTE,
        payload=billing.PriceQuote,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=billing.PriceQuoted,
        producers=(GATEWAY, CHAT_WORKER),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Price a usage at today's prices: the gateway for a finished request's final chunk "
        "(the same cost billing records when the usage event arrives), chat workers for the price per "
        "token of each deployment (the lowest-cost routing strategy; cached).",
    ),
    Subject(
        subject=auth.AUTH_KEY_VERIFY,
        payload=auth.KeyVerify,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=auth.KeyVerified,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Resolve an API key (by its SHA-256) to its user and plan; the gateway caches answers.",
    ),
    *(
        Subject(
            subject=own_subject,
            payload=ask,
            kind="command",
            delivery=Delivery.REQUEST_REPLY,
            reply=answer,
            producers=(GATEWAY,),
            consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
            description=description,
        )
        for own_subject, ask, answer, description in (
            (
                auth.AUTH_KEY_ISSUE,
                auth.KeyIssue,
                auth.KeyIssueAnswer,
                "A signed-in user creates a key of their own (POST /v1/keys, the console): billing "
                "issues it unless the plan's `max_api_keys` live keys exist already.",
            ),
            (
                auth.AUTH_KEY_LIST,
                auth.KeyList,
                auth.KeyListAnswer,
                "A user's own keys (GET /v1/keys): prefix, name, created, last used; never the secret.",
            ),
            (
                auth.AUTH_KEY_REVOKE,
                auth.KeyRevoke,
                auth.KeyRevokeAnswer,
                "A user revokes a key of their own (DELETE /v1/keys/{key_id}); billing announces "
                "`auth.key.revoked` as for an admin's revocation.",
            ),
        )
    ),
    Subject(
        subject=auth.AUTH_KEY_ISSUED,
        payload=auth.ApiKeyIssued,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(),
        description="An API key was issued (audit).",
    ),
    Subject(
        subject=auth.AUTH_KEY_REVOKED,
        payload=auth.ApiKeyRevoked,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(BILLING,),
        consumers=(Consumer(GATEWAY, None, "every replica drops the key from its cache"),),
        description="An API key was revoked; caches must drop it.",
    ),
    *(
        Subject(
            subject=breaker_subject,
            payload=routing.BreakerChanged,
            kind="fact",
            delivery=Delivery.JETSTREAM,
            stream=EVENTS,
            msg_id=_EVENT_ID,
            producers=(CHAT_WORKER,),
            consumers=(),
            description=description,
        )
        for breaker_subject, description in (
            (
                routing.ROUTING_BREAKER_OPENED,
                "A deployment failed too often within its window (or its probe failed): no worker sends "
                "it traffic during the cooldown.",
            ),
            (
                routing.ROUTING_BREAKER_HALF_OPENED,
                "A deployment's cooldown ended: one worker sends it one probe request.",
            ),
            (
                routing.ROUTING_BREAKER_CLOSED,
                "A deployment's probe succeeded: every worker routes to it again.",
            ),
        )
    ),
    Subject(
        subject=cache.CACHE_RESPONSE_INVALIDATED,
        payload=cache.ResponsesInvalidated,
        kind="fact",
        delivery=Delivery.CORE,
        producers=(GATEWAY,),
        consumers=(Consumer(GATEWAY, None, "every replica drops the matching answers it holds in memory"),),
        description="An admin invalidated cached answers (all, one user's, one model's); the replica "
        "that took the admin call has cleared the shared Redis tier already.",
    ),
    Subject(
        subject=auth.AUTH_USER_RESOLVE,
        payload=auth.UserResolve,
        kind="command",
        delivery=Delivery.REQUEST_REPLY,
        reply=auth.UserResolved,
        producers=(GATEWAY,),
        consumers=(Consumer(BILLING, billing.BILLING_QUEUE),),
        description="Someone signed in: which user is this identity? Billing (the owner of users) finds "
        "it by provider identity, else by e-mail, else creates it on the default plan, and answers the "
        "user's id, role, plan and rate tier for the session's claims.",
    ),
    Subject(
        subject=auth.AUTH_LOGIN_SUCCEEDED,
        payload=auth.LoginSucceeded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(GATEWAY,),
        consumers=(),
        description="A user signed in and got a session (audit).",
    ),
    Subject(
        subject=auth.AUTH_LOGIN_FAILED,
        payload=auth.LoginFailed,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(GATEWAY,),
        consumers=(),
        description="A sign-in was refused, with the reason (audit). Never carries an address, a code "
        "or a token.",
    ),
    Subject(
        subject=auth.AUTH_LOGIN_ENDED,
        payload=auth.LoginEnded,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=(GATEWAY,),
        consumers=(Consumer(GATEWAY, None, "every replica refuses the session from then on"),),
        description="A session ended before its expiry: signed out, or revoked by an admin. Redis keeps "
        "the revoked set for replicas that start later.",
    ),
    Subject(
        subject=lifecycle.SERVICE_STARTED,
        payload=lifecycle.ServiceLifecycle,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=SERVICES,
        consumers=(),
        description="A service instance started (`request_id` is the instance id).",
    ),
    Subject(
        subject=lifecycle.SERVICE_STOPPED,
        payload=lifecycle.ServiceLifecycle,
        kind="fact",
        delivery=Delivery.JETSTREAM,
        stream=EVENTS,
        msg_id=_EVENT_ID,
        producers=SERVICES,
        consumers=(),
        description="A service instance stopped cleanly.",
    ),
)

# Object Store buckets: payloads larger than a NATS message, streamed in chunks (docs/media.md).
# The permissions (lobe.shared.catalog.permissions) let exactly these services at each bucket.
BUCKETS: tuple[ObjectBucket, ...] = (
    ObjectBucket(
        name=media.MEDIA_BUCKET,
        writers=(GATEWAY, CHAT_WORKER),
        readers=(GATEWAY, CHAT_WORKER),
        ttl_s=media.MEDIA_OBJECT_TTL_S,
        description="A transcription's upload (the gateway writes it, the worker that takes the "
        "request reads it into the provider call and deletes it) and images too large for the "
        "`images.request` reply (the worker writes each image's b64_json, the gateway streams it "
        "to the client and deletes it). Objects are named after the request.",
    ),
)
