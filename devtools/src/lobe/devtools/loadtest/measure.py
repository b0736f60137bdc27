"""One measurement: warm up, run each load level, and read the suite's processes around each.

The result is the report as a plain dict (what `report.write` renders as JSON, markdown and
plots): per level the latency percentiles, throughput, errors, CPU per kind of process and per
request, and a per-second timeline; for the whole run the memory of every process over time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lobe.devtools.loadtest import machine
from lobe.devtools.loadtest.load import Level, LevelRun, Target, run_level
from lobe.devtools.loadtest.processes import NOT_SUITE, ProcessWatch, cpu_by_kind, rss_by_process
from lobe.devtools.loadtest.profile import record
from lobe.devtools.loadtest.stats import summarize, timeline


@dataclass
class Profiling:
    """py-spy these kinds of process (the first of each) during every level."""

    kinds: Sequence[str]
    out_dir: Path
    stem: str
    duration_s: int = 10
    rate_hz: int = 200


@dataclass
class Plan:
    label: str
    levels: Sequence[Level]
    target: dict[str, Any] = field(default_factory=dict)  # what was measured, for the report
    warmup: int = 20
    sample_interval_s: float = 1.0
    progress: bool = True
    profiling: Profiling | None = None


async def measure(target: Target, plan: Plan, watch: ProcessWatch) -> dict[str, Any]:
    load_before = machine.loadavg()
    began = datetime.now(UTC)
    if plan.warmup:
        warm = Level("closed", min(plan.warmup, 8), requests=plan.warmup)
        await run_level(target, warm, progress=False)
    levels = []
    async with watch.sampling(plan.sample_interval_s):
        for level in plan.levels:
            levels.append(await _level(target, level, plan, watch))
    load_after = machine.loadavg()
    return {
        "tool": "lobe loadtest",
        "label": plan.label,
        "started_at": began.isoformat(timespec="seconds"),
        "target": plan.target,
        "machine": machine.describe(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "machine_note": machine.quietness(load_before),
        "warmup_requests": plan.warmup,
        "levels": levels,
        "errors": sum(level["errors"] for level in levels),
        "memory": rss_by_process(watch.samples),
        "rss_timeline": _rss_timeline(watch),
    }


async def _level(target: Target, level: Level, plan: Plan, watch: ProcessWatch) -> dict[str, Any]:
    profile = _profile(plan, level, watch)
    start = await asyncio.to_thread(watch.read)
    try:
        run = await run_level(target, level, progress=plan.progress, desc=f"{plan.label} {level.label}")
    finally:
        if profile is not None:
            await profile  # py-spy stops after its duration, which the caller keeps within the level
    end = await asyncio.to_thread(watch.read)
    result = summarize(run)
    result |= _cpu(run, cpu_by_kind(start, end, run.wall_s))
    result["timeline"] = timeline(run)
    return result


def _profile(plan: Plan, level: Level, watch: ProcessWatch) -> asyncio.Task[list[Path]] | None:
    profiling = plan.profiling
    if profiling is None:
        return None
    pids = {kind: pids[0] for kind in profiling.kinds if (pids := watch.pids_of(kind))}
    stem = f"{profiling.stem}-{level.label.replace('=', '').replace(' ', '').replace('/', 'per')}"
    return asyncio.create_task(record(pids, profiling.out_dir, stem, profiling.duration_s, profiling.rate_hz))


def _cpu(run: LevelRun, kinds: dict[str, dict[str, float]]) -> dict[str, Any]:
    ok = sum(o.ok for o in run.outcomes)
    suite_s = sum(v["cpu_s"] for k, v in kinds.items() if k not in NOT_SUITE)
    for entry in kinds.values():
        entry["ms_per_request"] = entry["cpu_s"] * 1000 / ok if ok else float("nan")
        entry["cores"] = entry["cpu_s"] / run.wall_s if run.wall_s > 0 else 0.0
    return {
        "cpu": kinds,
        "suite_cpu_ms_per_request": suite_s * 1000 / ok if ok else float("nan"),
        "suite_cores": suite_s / run.wall_s if run.wall_s > 0 else 0.0,
    }


def _rss_timeline(watch: ProcessWatch) -> list[dict[str, float]]:
    if not watch.samples:
        return []
    t0 = watch.samples[0][0]
    rows = []
    for t, readings in watch.samples:
        row: dict[str, float] = {"t_s": t - t0}
        for reading in readings.values():
            row[reading.kind] = row.get(reading.kind, 0.0) + reading.rss / 2**20
        rows.append(row)
    return rows
