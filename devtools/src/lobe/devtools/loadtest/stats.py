"""Percentiles, throughput and error counts of one level's outcomes."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from lobe.devtools.loadtest.load import LevelRun
from lobe.devtools.loadtest.outcome import Outcome

PERCENTILES = (50, 90, 99, 99.9)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); sorted input, p in [0, 100]."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def distribution_ms(seconds: Sequence[float]) -> dict[str, float]:
    values = sorted(s * 1000 for s in seconds)
    if not values:
        return {}
    summary = {f"p{p:g}": percentile(values, p) for p in PERCENTILES}
    return {"min": values[0], **summary, "max": values[-1], "mean": sum(values) / len(values)}


def error_kinds(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Errors grouped by their kind (the text before the first colon), most frequent first."""
    kinds = Counter((o.error or "").split(":", 1)[0] for o in outcomes if not o.ok)
    return dict(kinds.most_common())


def summarize(run: LevelRun) -> dict[str, Any]:
    """Latency from each request's due time; throughput counts complete, valid answers only."""
    ok = [o for o in run.outcomes if o.ok]
    failed = [o for o in run.outcomes if not o.ok]
    return {
        "mode": run.level.mode,
        "load": run.level.value,
        "label": run.level.label,
        "requests": len(run.outcomes),
        "ok": len(ok),
        "errors": len(failed),
        "error_kinds": error_kinds(run.outcomes),
        "error_examples": sorted({o.error or "" for o in failed})[:5],
        "wall_s": run.wall_s,
        "throughput_rps": len(ok) / run.wall_s if run.wall_s > 0 else 0.0,
        "ttft_ms": distribution_ms([o.ttft_s for o in ok if o.ttft_s is not None]),
        "total_ms": distribution_ms([o.total_s for o in ok]),
    }


def timeline(run: LevelRun, window_s: float = 1.0) -> list[dict[str, float]]:
    """Per window of completion time: answers completed, errors and the latency p50/p99 of the window."""
    windows: dict[int, list[Outcome]] = {}
    for outcome in run.outcomes:
        finished = outcome.due + outcome.total_s - run.began
        windows.setdefault(int(finished // window_s), []).append(outcome)
    rows = []
    for index in sorted(windows):
        group = windows[index]
        totals = sorted(o.total_s * 1000 for o in group if o.ok)
        rows.append(
            {
                "t_s": (index + 1) * window_s,
                "completed": len(group),
                "errors": sum(not o.ok for o in group),
                "total_p50_ms": percentile(totals, 50),
                "total_p99_ms": percentile(totals, 99),
            }
        )
    return rows
