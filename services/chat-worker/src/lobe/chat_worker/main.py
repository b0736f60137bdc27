"""Process entry: settings and the routing file, then the shared service runtime (lobe.shared.process)."""

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
from lobe.shared.process import ServiceRuntime, run_service

log = logging.getLogger("lobe.chat_worker")


async def start(runtime: ServiceRuntime, settings: WorkerSettings, catalog: ModelCatalog) -> None:
    worker = ChatWorker(settings, catalog, registry=REGISTRY)  # one worker per process
    await runtime.serve_ops(settings, worker.ready)
    await worker.open(runtime)
    loop = asyncio.get_running_loop()
    if settings.models_file:
        reloader = RoutingReloader(
            settings.models_file, worker.apply_catalog, worker.metrics, settings.models_reload_interval_s
        )
        reloader.start()
        runtime.on_stop(reloader.stop)
        loop.add_signal_handler(signal.SIGHUP, reloader.request)
    else:  # SIGHUP's default would end the process
        loop.add_signal_handler(signal.SIGHUP, log.info, "SIGHUP: no MODELS_FILE to reload")
    log.info("serving models: %s", ", ".join(m.name for m in catalog.models))


def main() -> None:
    settings = WorkerSettings()
    try:
        catalog = load_catalog(settings.models_file)  # a bad file stops us here, naming field and line
    except ConfigError as exc:
        sys.exit(f"chat-worker: MODELS_FILE {exc}")
    run_service("chat-worker", settings, lambda runtime: start(runtime, settings, catalog))
