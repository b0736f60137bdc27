"""The machine a measurement ran on, and how busy other work kept it (load average before/after)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# Above this share of the CPUs busy with other work (1-minute load average / CPUs) before a run,
# its numbers say more about the neighbours than about the suite.
QUIET_SHARE = 0.25


def cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _first(path: str, prefix: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(prefix)), "")


def describe() -> dict[str, Any]:
    memory_kb = _first("/proc/meminfo", "MemTotal").split()
    return {
        "cpu_model": _first("/proc/cpuinfo", "model name") or platform.processor() or "?",
        "cpus": cpus(),
        "memory_gib": round(int(memory_kb[0]) / 2**20, 1) if memory_kb else None,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def quietness(before: list[float]) -> str:
    """A sentence for the report: whether others' work shared the machine during the run."""
    share = before[0] / cpus()
    if share < QUIET_SHARE:
        return (
            f"The machine was quiet: 1-minute load average {before[0]:.2f} on {cpus()} CPUs before the run."
        )
    level = "loaded" if share >= 0.75 else "partly loaded"
    return (
        f"**The machine was {level}** by other work: 1-minute load average {before[0]:.2f} on {cpus()} "
        "CPUs before the run. Latencies (the tail above all) and throughput are then upper and lower "
        "bounds; CPU per request, which counts only the suite's own processes, is the steadier number."
    )
