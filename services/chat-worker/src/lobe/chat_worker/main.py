"""Process entry: settings, logging, tracing, the worker and its ops server, SIGTERM handling."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from prometheus_client import REGISTRY

from lobe.chat_worker.deployments import ModelCatalog, load_catalog
from lobe.chat_worker.reload import RoutingReloader
from lobe.chat_worker.service import ChatWorker
from lobe.chat_worker.settings import WorkerSettings
from lobe.shared.config_file import ConfigError
from lobe.shared.ops import start_ops_server
from lobe.shared.process import run_service, stop_requested

log = logging.getLogger("lobe.chat_worker")


async def serve(settings: WorkerSettings, catalog: ModelCatalog) -> None:
    worker = ChatWorker(settings, catalog, registry=REGISTRY)  # one worker per process
    stop = stop_requested()
    await worker.start()
    ops = await start_ops_server(settings.ops_host, settings.ops_port, worker.ready)
    reloader = None
    if settings.models_file:
        reloader = RoutingReloader(
            settings.models_file, worker.apply_catalog, worker.metrics, settings.models_reload_interval_s
        )
        reloader.start()
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.request)
    else:  # SIGHUP's default would end the process
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, log.info, "SIGHUP: no MODELS_FILE to reload"
        )
    log.info("serving models: %s", ", ".join(m.name for m in catalog.models))
    await stop.wait()
    log.info("shutting down")
    if reloader is not None:
        await reloader.stop()
    await worker.stop()
    await ops.cleanup()


def main() -> None:
    settings = WorkerSettings()
    try:
        catalog = load_catalog(settings.models_file)  # a bad file stops us here, naming field and line
    except ConfigError as exc:
        sys.exit(f"chat-worker: MODELS_FILE {exc}")
    run_service("chat-worker", settings, lambda: serve(settings, catalog))
