"""PNG plots of reports: latency percentiles and throughput against load, p99 and memory over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

Report = dict[str, Any]


def report_plots(report: Report, out_dir: Path, stem: str) -> list[Path]:
    paths = [against_load([report], out_dir / f"{stem}-load.png")]
    paths.append(over_time(report, out_dir / f"{stem}-time.png"))
    return paths


def against_load(reports: Sequence[Report], path: Path) -> Path:
    """Left: TTFT and total p50/p99 per load level; right: answers per second. One line per report."""
    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.5))
    for index, report in enumerate(reports):
        levels = report["levels"]
        x = [level["load"] for level in levels]
        color = f"C{index}"
        for metric, style in (("ttft_ms", "-"), ("total_ms", "--")):
            for p, marker in (("p50", "o"), ("p99", "^")):
                y = [level[metric].get(p, float("nan")) for level in levels]
                name = "TTFT" if metric == "ttft_ms" else "total"
                latency.plot(x, y, style, marker=marker, color=color, label=f"{report['label']} {name} {p}")
        throughput.plot(x, [lv["throughput_rps"] for lv in levels], "-o", color=color, label=report["label"])
    mode = reports[0]["levels"][0]["mode"] if reports and reports[0]["levels"] else "closed"
    for ax in (latency, throughput):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (requests in flight)" if mode == "closed" else "arrival rate (requests/s)")
        ax.grid(True, which="both", alpha=0.3)
    latency.set_yscale("log")
    latency.set_ylabel("ms (log)")
    latency.set_title("latency percentiles against load")
    latency.legend(fontsize=7)
    throughput.set_yscale("log")
    throughput.set_ylabel("complete, valid answers per second (log)")
    throughput.set_title("throughput against load")
    throughput.legend(fontsize=8)
    return _save(fig, path)


def over_time(report: Report, path: Path) -> Path:
    """Top: total-time p50/p99 per second across all levels; bottom: RSS per kind of process."""
    fig, (latency, memory) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    offset = 0.0
    for level in report["levels"]:
        rows = level["timeline"]
        t = [offset + row["t_s"] for row in rows]
        latency.plot(t, [row["total_p99_ms"] for row in rows], color="C3", label=f"p99 ({level['label']})")
        latency.plot(t, [row["total_p50_ms"] for row in rows], color="C0", alpha=0.6)
        offset += level["wall_s"]
    latency.set_ylabel("total time, ms (blue p50, red p99)")
    latency.set_title(f"{report['label']}: latency over time")
    latency.grid(True, alpha=0.3)
    rows = report["rss_timeline"]
    kinds = sorted({k for row in rows for k in row if k != "t_s"})
    for kind in kinds:
        memory.plot([row["t_s"] for row in rows], [row.get(kind, float("nan")) for row in rows], label=kind)
    memory.set_xlabel("seconds since the first level started")
    memory.set_ylabel("RSS, MiB (all processes of a kind)")
    memory.grid(True, alpha=0.3)
    if kinds:
        memory.legend(fontsize=7, ncol=3)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def scaling(results: Sequence[tuple[int, int, Report]], path: Path) -> Path:
    """Answers per second per suite shape (gateways by workers), one bar per load level."""
    fig, ax = plt.subplots(figsize=(10, 4.5))
    labels = [f"{g} gw / {w} wk" for g, w, _ in results]
    loads = sorted({level["load"] for _, _, report in results for level in report["levels"]})
    width = 0.8 / max(1, len(loads))
    for index, load in enumerate(loads):
        heights = [
            next((lv["throughput_rps"] for lv in report["levels"] if lv["load"] == load), 0.0)
            for _, _, report in results
        ]
        xs = [i + index * width for i in range(len(results))]
        ax.bar(xs, heights, width, label=f"c={load:g}")
    ax.set_xticks([i + width * (len(loads) - 1) / 2 for i in range(len(results))], labels)
    ax.set_ylabel("complete, valid answers per second")
    ax.set_title("throughput by suite shape (gateways / workers)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, path)
