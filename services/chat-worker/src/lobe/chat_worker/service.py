"""The chat worker process: takes requests off `chat.request` (and the embeddings and media requests), runs them,
handles cancel and SIGTERM, swaps in a reloaded routing file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
from nats.js import JetStreamContext
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from lobe.chat_worker.deployments import Deployment, Endpoint, ModelCatalog, RoutedModel
from lobe.chat_worker.embeddings_run import EmbeddingsRun
from lobe.chat_worker.frames import FrameSink
from lobe.chat_worker.media_run import MediaRun, run_images, run_speech, run_transcription
from lobe.chat_worker.metrics import MAX_CONCURRENCY, STREAMS_ACTIVE
from lobe.chat_worker.providers.base import Provider
from lobe.chat_worker.providers.registry import build_provider
from lobe.chat_worker.routing.metrics import RoutingMetrics
from lobe.chat_worker.routing.router import Router
from lobe.chat_worker.run import ChatRun, RunContext
from lobe.chat_worker.settings import WorkerSettings
from lobe.shared.bus import Bus, Responder, ensure_streams
from lobe.shared.bus.listen import publish
from lobe.shared.bus.objects import delete_object
from lobe.shared.catalog import CHAT_WORKER
from lobe.shared.events.chat import (
    CHAT_CANCEL,
    CHAT_MODELS,
    CHAT_REQUEST,
    AcceptedFrame,
    ChatCancelled,
    ChatRequested,
    ErrorFrame,
    ModelInfo,
    ModelList,
    Upstream,
)
from lobe.shared.events.embeddings import (
    EMBEDDINGS_REQUEST,
    EmbeddingsAnswer,
    EmbeddingsFailure,
    EmbeddingsRequested,
)
from lobe.shared.events.media import (
    IMAGES_REQUEST,
    SPEECH_AUDIO,
    SPEECH_REQUEST,
    TRANSCRIPTION_REQUEST,
    ImagesAnswer,
    ImagesRequested,
    MediaAnswer,
    MediaFailure,
    SpeechChunk,
    SpeechEnded,
    SpeechRequested,
    TranscriptionAnswer,
    TranscriptionRequested,
)
from lobe.shared.events.usage import USAGE_RECORDED, UsageRecorded
from lobe.shared.process import ServiceRuntime, started

log = logging.getLogger(__name__)
TRACER = trace.get_tracer("lobe.chat_worker")


# JetStream may be away for a while (a reconnect; a stream electing a new leader after a node is
# lost, measured at up to ~10 s in tests/faults/test_nats_cluster_node_loss.py): usage is never
# given up on lightly. 30 attempts wait ~27 s when each is refused at once, longer when each times
# out; the answer's terminal frame waits too (heartbeats keep the gateway patient meanwhile).
USAGE_PUBLISH_ATTEMPTS = 30


def refusal(request_id: str, status: int, code: str, message: str, retryable: bool = False) -> ErrorFrame:
    """The reply that turns a request down before any work (the gateway maps it to HTTP)."""
    return ErrorFrame(
        request_id=request_id, seq=0, status=status, code=code, message=message, retryable=retryable
    )


# Per endpoint: its path and what a model serving it is called (for the 404's message).
NOT_SERVED_WORDS: dict[Endpoint, tuple[str, str]] = {
    "chat": ("v1/chat/completions", "a chat"),
    "embeddings": ("v1/embeddings", "an embedding"),
    "responses": ("v1/responses", "a Responses"),
    "images": ("v1/images/generations", "an image"),
    "speech": ("v1/audio/speech", "a speech"),
    "transcriptions": ("v1/audio/transcriptions", "a transcription"),
}
MediaRequested = ImagesRequested | SpeechRequested | TranscriptionRequested


def not_served(model: str, endpoint: Endpoint, routed: RoutedModel | None) -> tuple[int, str, str] | None:
    """(status, code, message) when this model does not answer this endpoint: OpenAI's 404s."""
    if routed is None:
        return 404, "model_not_found", f"The model '{model}' does not exist or you do not have access to it."
    if endpoint not in routed.serves:
        path, kind = NOT_SERVED_WORDS[endpoint]
        return (
            404,
            "model_not_supported",
            f"The model '{model}' is not {kind} model: it is not supported in {path}.",
        )
    return None


def unreadable_embeddings(exc: ValidationError) -> EmbeddingsAnswer:
    failure = EmbeddingsFailure(
        status=400, code="invalid_event", message="The chat worker could not read the request."
    )
    return EmbeddingsAnswer(request_id="unknown", error=failure)


def unreadable_media(endpoint: str) -> Callable[[ValidationError], MediaAnswer]:
    def answer(exc: ValidationError) -> MediaAnswer:
        failure = MediaFailure(
            status=400, code="invalid_event", message="The chat worker could not read the request."
        )
        replies: dict[str, type[MediaAnswer]] = {"images": ImagesAnswer, "speech": SpeechEnded}
        reply = replies.get(endpoint, TranscriptionAnswer)
        return reply(request_id="unknown", error=failure)

    return answer


@contextlib.contextmanager
def _span(name: str, event: MediaRequested | EmbeddingsRequested, endpoint: Endpoint) -> Iterator[None]:
    # The bus's span for the request, itself the gateway's child: the run continues it.
    span = TRACER.start_span(name, context=otel_context.get_current(), kind=SpanKind.CONSUMER)
    span.set_attributes(run_attributes(event.request_id, event.body.model, endpoint))
    with trace.use_span(span, end_on_exit=True):
        yield


def run_attributes(request_id: str, model: str, endpoint: Endpoint) -> dict[str, str]:
    """A run span's: the request, the model asked for, and the endpoint (as the gateway's
    request span names it, `lobe.endpoint`)."""
    return {"lobe.request_id": request_id, "gen_ai.request.model": model, "lobe.endpoint": endpoint}


def unreadable(exc: ValidationError) -> ErrorFrame:
    # The validation error quotes the event (the caller too): logged by the bus, not sent back.
    return refusal("unknown", 400, "invalid_event", "The chat worker could not read the request.")


class ChatWorker:
    def __init__(
        self, settings: WorkerSettings, catalog: ModelCatalog, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.metrics = RoutingMetrics(registry)
        self.bus = Bus(settings, f"chat-worker {settings.worker_id}", CHAT_WORKER)
        self.runs: dict[str, tuple[asyncio.Task[None], FrameSink]] = {}
        self._usage_publishes: set[asyncio.Future[bool]] = set()  # outlive their runs' cancels
        self.providers: dict[str, Provider] = {}  # by Deployment.config_key
        self.session: aiohttp.ClientSession | None = None
        self._js: JetStreamContext | None = None
        self._router: Router | None = None
        self._requests: Responder | None = None
        self._embeddings: Responder | None = None
        self._media: list[Responder] = []
        self._in_process = AsyncExitStack()

    async def open(self, runtime: ServiceRuntime) -> None:
        """Connect and take requests. On the way out: stop taking them, let the runs in flight
        finish within the grace and fail the rest explicitly, then drain NATS."""
        # One pooled session per process: connection reuse to each provider is most of TTFT.
        self.session = await runtime.enter(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        )
        runtime.on_stop(self._close_providers)
        nc = await runtime.connect(self.bus)
        self._js = self.bus.js
        await ensure_streams(self.js, replicas=self.settings.nats_stream_replicas)
        runtime.announce(self.js)
        self._router = Router(
            nc,
            self.js,
            self.settings.worker_id,
            self.metrics,
            store_timeout_s=self.settings.routing_store_timeout_s,
            snapshot_interval_s=self.settings.routing_snapshot_interval_s,
            replicas=self.settings.nats_stream_replicas,
        )
        await self._router.start(self.catalog)
        runtime.on_stop(self._router.stop)
        # Cancels and model queries: runs still draining need them. Cancels name the worker that
        # accepted the request: no other worker reads them.
        await self.bus.responds(CHAT_CANCEL, self.on_cancel, worker_id=self.settings.worker_id)
        await self.bus.responds(CHAT_MODELS, self.on_models)
        # Taking requests (live at the server) before the worker says it is ready.
        self._requests = await self.bus.responds(CHAT_REQUEST, self.accept, malformed=unreadable)
        # Each embeddings request waits on its provider in a task of its own, up to the worker's
        # concurrency; more wait in the subscription until a place frees.
        self._embeddings = await self.bus.responds(
            EMBEDDINGS_REQUEST,
            self.embed,
            concurrency=self.settings.worker_max_concurrency,
            malformed=unreadable_embeddings,
        )
        # Images, speech and transcriptions: as embeddings, each in a task of its own.
        for subject, handler, endpoint in (
            (IMAGES_REQUEST, self.images, "images"),
            (SPEECH_REQUEST, self.speech, "speech"),
            (TRANSCRIPTION_REQUEST, self.transcription, "transcriptions"),
        ):
            responder = await self.bus.responds(
                subject,
                handler,
                concurrency=self.settings.worker_max_concurrency,
                malformed=unreadable_media(endpoint),
            )
            self._media.append(responder)
        runtime.on_stop(self._finish_runs)
        MAX_CONCURRENCY.set(self.settings.worker_max_concurrency)

    async def start(self) -> None:
        """In process (tests, benches): the worker as its process runs it, until stop()."""
        await self._in_process.enter_async_context(started("chat-worker", self.open))

    async def stop(self) -> None:
        await self._in_process.aclose()

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "open() first"
        return self._js

    @property
    def router(self) -> Router:
        assert self._router is not None, "open() first"
        return self._router

    def apply_catalog(self, catalog: ModelCatalog) -> None:
        """A reloaded routing file: new requests route by it; those in flight keep theirs."""
        self.catalog = catalog
        self.router.configure(catalog)
        keep = {d.config_key for m in catalog.models for d in m.deployments}
        for key in [k for k in self.providers if k not in keep]:
            del self.providers[key]  # adapters hold no connection of their own (one shared session)

    async def ready(self) -> bool:
        return self.session is not None and self.bus.connected

    def accept(self, event: ChatRequested) -> AcceptedFrame | ErrorFrame:
        """Accept (or refuse) a request; the answer streams from a task of its own. A bug here
        leaves the request unanswered: the gateway's accept times out and it re-dispatches."""
        catalog = self.catalog  # the request keeps this routing, whatever a reload does meanwhile
        routed = catalog.get(event.body.model)
        refused = not_served(event.body.model, event.endpoint, routed)
        if refused is not None:
            return refusal(event.request_id, *refused)
        assert routed is not None
        if len(self.runs) >= self.settings.worker_max_concurrency:
            # Saturated: say so at once, so the gateway can try another worker.
            return refusal(event.request_id, 503, "worker_saturated", "worker at capacity", retryable=True)
        sink = FrameSink(
            self.bus.connection, event.reply_to, event.request_id, self.settings.heartbeat_interval_s
        )
        # The bus's span for this chat.request, itself the gateway's child: the run continues it.
        parent = otel_context.get_current()
        task = asyncio.create_task(
            self._run(event, catalog, routed, sink, parent), name=f"chat {event.request_id}"
        )
        self.runs[event.request_id] = (task, sink)
        STREAMS_ACTIVE.set(len(self.runs))  # what the saturation check above counts
        return AcceptedFrame(request_id=event.request_id, seq=0, worker_id=self.settings.worker_id)

    async def embed(self, event: EmbeddingsRequested) -> EmbeddingsAnswer:
        """Answer an embeddings request (its usage recorded first). A bug here leaves it
        unanswered: the gateway's request times out."""
        catalog = self.catalog  # the request keeps this routing, whatever a reload does meanwhile
        routed = catalog.get(event.body.model)
        refused = not_served(event.body.model, "embeddings", routed)
        if refused is not None:
            status, code, message = refused
            failure = EmbeddingsFailure(status=status, code=code, message=message)
            return EmbeddingsAnswer(request_id=event.request_id, error=failure)
        assert routed is not None
        with _span("embeddings.run", event, "embeddings"):
            run = EmbeddingsRun(event, self._run_context(catalog, routed), self.bus.connection.max_payload)
            return await run.execute()

    def _media_run(self, event: MediaRequested, endpoint: Endpoint) -> MediaRun[Any] | MediaFailure:
        catalog = self.catalog  # the request keeps this routing, whatever a reload does meanwhile
        routed = catalog.get(event.body.model)
        refused = not_served(event.body.model, endpoint, routed)
        if refused is not None:
            status, code, message = refused
            return MediaFailure(status=status, code=code, message=message)
        assert routed is not None
        context = self._run_context(catalog, routed)
        return MediaRun(
            event.request_id, event.caller, event.body, event.deadline_ms, context, event.correlation_id
        )

    async def images(self, event: ImagesRequested) -> ImagesAnswer:
        run = self._media_run(event, "images")
        if isinstance(run, MediaFailure):
            return ImagesAnswer(request_id=event.request_id, error=run)
        with _span("images.run", event, "images"):
            return await run_images(run, event, self.bus.js, self.bus.connection.max_payload)

    async def speech(self, event: SpeechRequested) -> SpeechEnded:
        run = self._media_run(event, "speech")
        if isinstance(run, MediaFailure):
            return SpeechEnded(request_id=event.request_id, error=run)
        nc = self.bus.connection

        async def send(chunk: SpeechChunk) -> None:
            await publish(nc, SPEECH_AUDIO, chunk, request_id=event.request_id)

        with _span("speech.run", event, "speech"):
            return await run_speech(run, event, send)

    async def transcription(self, event: TranscriptionRequested) -> TranscriptionAnswer:
        run = self._media_run(event, "transcriptions")
        if isinstance(run, MediaFailure):
            await delete_object(self.bus.js, event.body.audio_object)
            return TranscriptionAnswer(request_id=event.request_id, error=run)
        with _span("transcription.run", event, "transcriptions"):
            return await run_transcription(run, event, self.bus.js)

    def on_models(self) -> ModelList:
        catalog = self.catalog
        return ModelList(
            models=[
                ModelInfo(
                    id=m.name,
                    owned_by=m.owned_by,
                    reaches=[Upstream(provider=p, model=u) for p, u in catalog.reaches(m.name)],
                    deployments=[self.router.health(d) for d in m.deployments] if self._router else [],
                )
                for m in catalog.models
            ]
        )

    def on_cancel(self, event: ChatCancelled) -> None:
        # The bus validates the body; a malformed cancel is logged and dropped.
        run = self.runs.get(event.request_id)
        if run is not None:
            run[0].cancel()

    async def _run(
        self,
        event: ChatRequested,
        catalog: ModelCatalog,
        routed: RoutedModel,
        sink: FrameSink,
        parent: Context,
    ) -> None:
        span = TRACER.start_span("chat.run", context=parent, kind=SpanKind.CONSUMER)
        span.set_attributes(run_attributes(event.request_id, event.body.model, event.endpoint))
        try:
            with trace.use_span(span, end_on_exit=True):
                await self._execute(event, catalog, routed, sink)
        finally:
            self.runs.pop(event.request_id, None)
            STREAMS_ACTIVE.set(len(self.runs))

    async def _execute(
        self, event: ChatRequested, catalog: ModelCatalog, routed: RoutedModel, sink: FrameSink
    ) -> None:
        try:
            async with sink:
                run = ChatRun(event, self._run_context(catalog, routed), sink)
                await run.execute()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("chat run crashed", extra={"request_id": event.request_id})

    def _run_context(self, catalog: ModelCatalog, routed: RoutedModel) -> RunContext:
        return RunContext(catalog, routed, self.router, self._provider_for, self._record_usage)

    def _provider_for(self, deployment: Deployment) -> Provider:
        key = deployment.config_key
        provider = self.providers.get(key)
        if provider is None:
            assert self.session is not None
            provider = self.providers[key] = build_provider(deployment, self.session)
        return provider

    async def _record_usage(self, event: UsageRecorded) -> bool:
        """Publish a run's usage event, whatever happens to the run meanwhile. The publish retries
        for seconds while JetStream elects a leader, and the gateway may cancel the run then (its
        client left, or it gave up on a stream with a gap): the cancel reaches the run, not the
        publish, which the shutdown waits for (guarantee 3: usage is never lost)."""
        publish = asyncio.ensure_future(
            self.bus.publish_fact(USAGE_RECORDED, event, attempts=USAGE_PUBLISH_ATTEMPTS)
        )
        self._usage_publishes.add(publish)
        publish.add_done_callback(self._usage_publishes.discard)
        return await asyncio.shield(publish)

    async def _finish_runs(self) -> None:
        """Stop taking work, let streams finish within the grace, fail the rest explicitly."""
        if self._requests is not None:
            await self._requests.stop()
        if self._embeddings is not None:
            await self._embeddings.stop()  # those in hand finish (each within its deployment's timeouts)
        for responder in self._media:
            await responder.stop()
        if not self.runs:
            return
        log.info("draining %d streams", len(self.runs))
        _, pending = await asyncio.wait(
            [t for t, _ in self.runs.values()], timeout=self.settings.shutdown_grace_s
        )
        for request_id, (task, sink) in list(self.runs.items()):
            if task in pending:
                with contextlib.suppress(Exception):
                    await sink.send(
                        ErrorFrame(
                            request_id=request_id,
                            seq=sink.next_seq(),
                            status=503,
                            code="worker_shutdown",
                            message="the worker shut down before the answer completed",
                        )
                    )
                task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self._usage_publishes:
            # Bounded by the publishes' own attempts; one that gives up logs its whole event.
            await asyncio.wait(set(self._usage_publishes))

    async def _close_providers(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
