"""CPU time and memory of every process of the suite under load, read with psutil.

The processes are the descendants of the watched roots (typically `lobe dev`'s pid, which runs
every service, NATS, PostgreSQL and Redis as its children), grouped into kinds by what they run.
CPU is user + system time, so "CPU per request" is the cost in core-milliseconds whatever the
parallelism. The load generator itself is watched too (kind `client`): on a shared machine it
competes with the suite for the same cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psutil

MODULES = (
    ("gateway", "lobe.gateway"),
    ("chat-worker", "lobe.chat_worker"),
    ("billing", "lobe.billing"),
    ("metrics", "lobe.metrics"),
    ("fake-upstream", "lobe.devtools.loadtest.upstream"),
)
BINARIES = {
    "nats-server": "nats",
    "postgres": "postgres",
    "redis-server": "redis",
    "py-spy": "py-spy",
    "node": "dev-sign-in",  # `lobe dev`'s local OpenID provider
}
# Measured and reported, but not part of the suite's cost per request.
NOT_SUITE = frozenset({"fake-upstream", "client", "supervisor", "py-spy", "dev-sign-in"})


def kind_of(proc: psutil.Process) -> str:
    try:
        name = proc.name()
        argv = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if name in BINARIES:
        return BINARIES[name]
    for kind, module in MODULES:
        if module in argv:
            return kind
    if "dev" in argv and ("lobe.devtools.cli" in argv or any(arg.endswith("/lobe") for arg in argv[:2])):
        return "supervisor"  # `lobe dev` itself: starts, watches, relays logs
    return str(name)


@dataclass(frozen=True)
class Reading:
    kind: str
    cpu_s: float
    rss: int
    # Resident and not shared (RSS minus file-backed and shared-memory pages): what a leak grows.
    # RSS alone also counts the shared buffers a PostgreSQL backend has touched so far.
    private: int = 0


@dataclass
class ProcessWatch:
    roots: Sequence[int]
    client_pid: int = field(default_factory=os.getpid)
    # Roots whose whole family is one kind, whatever each process runs: a system measured as one
    # (LiteLLM's proxy and the uvicorn workers it spawns through multiprocessing).
    root_kinds: Mapping[int, str] = field(default_factory=dict)
    samples: list[tuple[float, dict[int, Reading]]] = field(default_factory=list)
    _procs: dict[int, psutil.Process] = field(default_factory=dict)
    _kinds: dict[int, str] = field(default_factory=dict)
    # read() runs in worker threads: the sampler's and a level's edges may overlap.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _processes(self) -> Iterable[tuple[psutil.Process, int]]:
        """Every process of the roots' families (then the client's), each once, with its root."""
        seen: set[int] = set()
        for pid in (*self.roots, self.client_pid):
            try:
                root = self._procs.get(pid) or psutil.Process(pid)
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in family:
                if proc.pid not in seen:
                    seen.add(proc.pid)
                    yield self._procs.setdefault(proc.pid, proc), pid

    def read(self) -> dict[int, Reading]:
        with self._lock:
            return self._read()

    def _read(self) -> dict[int, Reading]:
        readings = {}
        for proc, root in self._processes():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if proc.pid not in self._kinds:
                self._kinds[proc.pid] = self._kind(proc, root)
            private = memory.rss - getattr(memory, "shared", 0)
            readings[proc.pid] = Reading(
                self._kinds[proc.pid], times.user + times.system, memory.rss, private
            )
        return readings

    def _kind(self, proc: psutil.Process, root: int) -> str:
        if proc.pid == self.client_pid:
            return "client"
        return self.root_kinds.get(root) or kind_of(proc)

    def pids_of(self, kind: str) -> list[int]:
        return sorted(pid for pid, reading in self.read().items() if reading.kind == kind)

    async def sample(self, interval_s: float) -> None:
        """Append a reading every interval until cancelled (memory and CPU over time)."""
        while True:
            readings = await asyncio.to_thread(self.read)
            self.samples.append((time.perf_counter(), readings))
            await asyncio.sleep(interval_s)

    @contextlib.asynccontextmanager
    async def sampling(self, interval_s: float) -> AsyncIterator[ProcessWatch]:
        task = asyncio.create_task(self.sample(interval_s))
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def cpu_by_kind(
    start: dict[int, Reading], end: dict[int, Reading], wall_s: float
) -> dict[str, dict[str, float]]:
    """CPU each kind spent between two readings: seconds, processes, and how busy its busiest
    process was (cores; near 1.0 a single-threaded process is saturated). A process started in
    between counts from zero; one that ended in between is missing (its time is lost)."""
    kinds: dict[str, dict[str, float]] = {}
    for pid, reading in end.items():
        spent = reading.cpu_s - (start[pid].cpu_s if pid in start else 0.0)
        entry = kinds.setdefault(reading.kind, {"cpu_s": 0.0, "processes": 0, "busiest_cores": 0.0})
        entry["cpu_s"] += spent
        entry["processes"] += 1
        entry["busiest_cores"] = max(entry["busiest_cores"], spent / wall_s if wall_s > 0 else 0.0)
    return dict(sorted(kinds.items()))


def rss_by_process(
    samples: Sequence[tuple[float, dict[int, Reading]]], window_s: float = 60.0, settle_s: float = 60.0
) -> list[dict[str, object]]:
    """Per process: RSS at the start and end of the steady load, its peak, and the growth of its
    private resident memory (see `Reading.private`) between the two.

    The start is the median of the readings in the `window_s` after the first `settle_s` (the
    warm-up: connection pools, caches and JetStream's block cache fill then), the end the median
    of the last `window_s`. Medians over a window, because a garbage-collected process's memory is
    a sawtooth (nats-server's Go heap swings by 10-20 MiB between collections): one reading at a
    peak is not growth. A run too short for the warm-up is judged from its first reading."""
    series: dict[int, list[tuple[float, Reading]]] = {}
    for t, readings in samples:
        for pid, reading in readings.items():
            series.setdefault(pid, []).append((t, reading))
    rows: list[dict[str, object]] = []
    for pid, seen in sorted(series.items(), key=lambda item: (item[1][0][1].kind, item[0])):
        t_first, t_last = seen[0][0], seen[-1][0]
        settle = settle_s if t_last - t_first >= settle_s + 2 * window_s else 0.0
        begins = t_first + settle
        first = [r for t, r in seen if begins <= t <= begins + window_s] or [seen[0][1]]
        last = [r for t, r in seen if t >= t_last - window_s] or [seen[-1][1]]
        start_mb, end_mb = _median_mb(r.rss for r in first), _median_mb(r.rss for r in last)
        rows.append(
            {
                "kind": seen[0][1].kind,
                "pid": pid,
                "samples": len(seen),
                "rss_start_mb": start_mb,
                "rss_end_mb": end_mb,
                "rss_peak_mb": max(r.rss for _, r in seen) / 2**20,
                "rss_growth_mb": end_mb - start_mb,
                "growth_mb": _median_mb(r.private for r in last) - _median_mb(r.private for r in first),
            }
        )
    return rows


def _median_mb(values: Iterable[int]) -> float:
    return statistics.median(values) / 2**20
