"""Process entry: settings, logging, tracing, the worker and its ops server, SIGTERM handling."""

from __future__ import annotations

import logging
import sys

import yaml
from pydantic import ValidationError

from lobe.chat_worker.deployments import ModelCatalog, load_catalog
from lobe.chat_worker.service import ChatWorker
from lobe.chat_worker.settings import WorkerSettings
from lobe.shared.config_file import describe
from lobe.shared.ops import start_ops_server
from lobe.shared.process import run_service, stop_requested

log = logging.getLogger("lobe.chat_worker")


async def serve(settings: WorkerSettings, catalog: ModelCatalog) -> None:
    worker = ChatWorker(settings, catalog)
    stop = stop_requested()
    await worker.start()
    ops = await start_ops_server(settings.ops_host, settings.ops_port, worker.ready)
    log.info("serving models: %s", ", ".join(m.name for m in catalog.models))
    await stop.wait()
    log.info("shutting down")
    await worker.stop()
    await ops.cleanup()


def main() -> None:
    settings = WorkerSettings()
    try:
        catalog = load_catalog(settings.models_file)  # a bad file stops us here, naming the field
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
        sys.exit(f"chat-worker: MODELS_FILE {settings.models_file}: {reason}")
    run_service("chat-worker", settings, lambda: serve(settings, catalog))
