"""Reloads the routing file on SIGHUP or when it changes, without dropping a stream in flight.

A new file is validated whole before it replaces the routing in use; a bad one is refused with
each bad field and its line in the log (and `lobe_routing_reloads_total{outcome="refused"}`),
and the routing in use stays. Streams in flight keep the routing they started with: each request
holds its own reference to the catalog it was accepted under.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from lobe.chat_worker.deployments import ModelCatalog, load_catalog
from lobe.chat_worker.routing.metrics import RoutingMetrics
from lobe.shared.config_file import ConfigError

log = logging.getLogger(__name__)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)  # follows the symlink a Kubernetes ConfigMap update swaps
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class RoutingReloader:
    def __init__(
        self, path: str, apply: Callable[[ModelCatalog], None], metrics: RoutingMetrics, interval_s: float
    ) -> None:
        self.path = Path(path)
        self.apply = apply
        self.metrics = metrics
        self.interval_s = interval_s
        self._stamp = _stamp(self.path)
        self._asked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=2.0)

    def request(self) -> None:
        """SIGHUP: reload now, changed or not."""
        self._asked.set()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s or None):
                    await self._asked.wait()
            asked, stamp = self._asked.is_set(), _stamp(self.path)
            self._asked.clear()
            if asked or stamp != self._stamp:
                self._stamp = stamp
                self.reload()

    def reload(self) -> bool:
        try:
            catalog = load_catalog(self.path)
        except ConfigError as exc:
            log.error("routing file refused, the routing in use stays: %s", exc)
            self.metrics.reloads.labels(outcome="refused").inc()
            return False
        self.apply(catalog)
        self.metrics.reloads.labels(outcome="applied").inc()
        log.info("routing reloaded from %s: %s", self.path, ", ".join(m.name for m in catalog.models))
        return True
