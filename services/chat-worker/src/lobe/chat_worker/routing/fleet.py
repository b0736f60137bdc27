"""In-flight counts and time-to-first-token averages, per deployment, across the fleet.

Each worker keeps its own (exact for itself) and publishes them as one snapshot in the routing
store (`worker.<worker_id>`), at most every `publish_interval_s` when they changed and every
`heartbeat_s` regardless; the others read the snapshots from their watched copy. A snapshot older
than three heartbeats is a dead worker's and is ignored, so a killed worker's in-flight requests
stop counting within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

from lobe.chat_worker.routing.store import RoutingStore, token

KEY_PREFIX = "worker."
# Weight of the newest sample in the time-to-first-token average: about the last ten count.
EWMA_ALPHA = 0.2
STOP_WAIT_S = 2.0


@dataclass
class Snapshot:
    at: float
    in_flight: dict[str, int] = field(default_factory=dict)
    ttft_ms: dict[str, tuple[float, int]] = field(default_factory=dict)  # deployment -> (average, samples)

    @classmethod
    def decode(cls, data: bytes) -> Snapshot | None:
        try:
            raw = json.loads(data)
            return cls(
                at=float(raw["at"]),
                in_flight={str(k): int(v) for k, v in raw.get("in_flight", {}).items()},
                ttft_ms={str(k): (float(v[0]), int(v[1])) for k, v in raw.get("ttft_ms", {}).items()},
            )
        except (ValueError, KeyError, TypeError, IndexError):
            return None


class FleetStats:
    def __init__(
        self, store: RoutingStore, worker_id: str, publish_interval_s: float = 0.05, heartbeat_s: float = 5.0
    ) -> None:
        self.store = store
        self.key = KEY_PREFIX + token(worker_id)
        self.publish_interval_s = publish_interval_s
        self.heartbeat_s = heartbeat_s
        self.in_flight: Counter[str] = Counter()
        self.ttft_ms: dict[str, tuple[float, int]] = {}
        self.peers: dict[str, Snapshot] = {}  # other workers' snapshots, decoded as the watch delivers them
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        store.listeners.append(self._on_store_change)

    def _on_store_change(self, key: str, value: bytes | None) -> None:
        if not key.startswith(KEY_PREFIX) or key == self.key:
            return
        snapshot = Snapshot.decode(value) if value else None
        if snapshot is None:
            self.peers.pop(key, None)
        else:
            self.peers[key] = snapshot

    def start(self) -> None:
        self._task = asyncio.create_task(self._publish_loop())

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            # Bounded, and the loop checks the flag too: Python 3.11's wait_for (inside nats.py)
            # can swallow a cancel that lands as its reply arrives.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_WAIT_S)
        await self.store.delete(self.key)  # our requests stop counting now, not in 15 s

    def started(self, deployment: str) -> None:
        self.in_flight[deployment] += 1
        self._changed.set()

    def ended(self, deployment: str) -> None:
        self.in_flight[deployment] -= 1
        if self.in_flight[deployment] <= 0:
            del self.in_flight[deployment]
        self._changed.set()

    def first_token(self, deployment: str, ttft_ms: float) -> None:
        average, samples = self.ttft_ms.get(deployment, (ttft_ms, 0))
        self.ttft_ms[deployment] = (average + EWMA_ALPHA * (ttft_ms - average), samples + 1)
        self._changed.set()

    def _others(self) -> list[Snapshot]:
        fresh_after = time.time() - 3 * self.heartbeat_s
        return [s for s in self.peers.values() if s.at >= fresh_after]

    def live_workers(self) -> int:
        return 1 + len(self._others())

    def fleet_in_flight(self, deployment: str) -> int:
        return self.in_flight[deployment] + sum(s.in_flight.get(deployment, 0) for s in self._others())

    def fleet_ttft_ms(self, deployment: str) -> float | None:
        """The sample-weighted mean of every worker's average; None before any sample."""
        figures = [s.ttft_ms[deployment] for s in self._others() if deployment in s.ttft_ms]
        if deployment in self.ttft_ms:
            figures.append(self.ttft_ms[deployment])
        samples = sum(n for _, n in figures)
        return sum(avg * n for avg, n in figures) / samples if samples else None

    async def _publish_loop(self) -> None:
        while not self._stopped:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_s):
                    await self._changed.wait()
            self._changed.clear()
            snapshot = {"at": time.time(), "in_flight": dict(self.in_flight), "ttft_ms": self.ttft_ms}
            await self.store.put(self.key, json.dumps(snapshot, separators=(",", ":")).encode())
            await asyncio.sleep(self.publish_interval_s)  # coalesce a burst into one write
