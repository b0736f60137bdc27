"""A measurement's report on disk: `<stem>.json` (every number), `<stem>.md` (tables), PNG plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lobe.devtools.loadtest import plots
from lobe.devtools.loadtest.processes import NOT_SUITE


def _clean(value: Any) -> Any:
    """NaN (no successful answer to divide by) is not JSON: write null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write(report: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(_clean(report), indent=1) + "\n")
    images = plots.report_plots(report, out_dir, stem)
    md_path = out_dir / f"{stem}.md"
    md_path.write_text(markdown(report, [p.name for p in images]))
    return [json_path, md_path, *images]


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1f}"


def latency_table(levels: Sequence[dict[str, Any]]) -> str:
    rows = [
        "| load | requests | errors | answers/s | TTFT p50 | TTFT p90 | TTFT p99 | TTFT p99.9 | total p50 | total p99 |"
        " suite CPU/request | suite cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        ttft, total = level["ttft_ms"], level["total_ms"]
        cells = [_ms(ttft.get(p)) for p in ("p50", "p90", "p99", "p99.9")]
        cells += [_ms(total.get("p50")), _ms(total.get("p99"))]
        rows.append(
            f"| {level['label']} | {level['requests']} | {level['errors']} | {level['throughput_rps']:.0f} | "
            + " | ".join(cells)
            + f" | {_ms(level['suite_cpu_ms_per_request'])} ms | {level['suite_cores']:.2f} |"
        )
    return "\n".join(rows)


def cpu_table(levels: Sequence[dict[str, Any]]) -> str:
    """CPU ms per successful answer per kind of process, with the busiest process's cores."""
    kinds = sorted({k for level in levels for k in level["cpu"]}, key=lambda k: (k in NOT_SUITE, k))
    head = "| load | " + " | ".join(kinds) + " | suite |"
    rows = [head, "|---|" + "---:|" * (len(kinds) + 1)]
    for level in levels:
        cells = []
        for kind in kinds:
            entry = level["cpu"].get(kind)
            cells.append(
                "-" if entry is None else f"{_ms(entry['ms_per_request'])} ({entry['busiest_cores']:.2f})"
            )
        rows.append(
            f"| {level['label']} | " + " | ".join(cells) + f" | {_ms(level['suite_cpu_ms_per_request'])} |"
        )
    return "\n".join(rows)


def memory_table(memory: Sequence[dict[str, Any]]) -> str:
    rows = [
        "| process | pid | RSS start | RSS end | RSS peak | private memory growth |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in memory:
        rows.append(
            f"| {row['kind']} | {row['pid']} | {row['rss_start_mb']:.1f} MiB | {row['rss_end_mb']:.1f} MiB | "
            f"{row['rss_peak_mb']:.1f} MiB | {row['growth_mb']:+.1f} MiB |"
        )
    return "\n".join(rows)


def machine_lines(report: dict[str, Any]) -> str:
    m = report["machine"]
    before = " / ".join(f"{x:.2f}" for x in report["loadavg_before"])
    after = " / ".join(f"{x:.2f}" for x in report["loadavg_after"])
    return (
        f"- {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB; {m['system']}, Python {m['python']}\n"
        f"- load average (1/5/15 min): {before} before, {after} after\n\n{report['machine_note']}"
    )


def markdown(report: dict[str, Any], images: Sequence[str]) -> str:
    target = ", ".join(f"{k}: {v}" for k, v in report["target"].items())
    errors = [
        f"- {level['label']}: {example}" for level in report["levels"] for example in level["error_examples"]
    ]
    parts = [
        f"# lobe loadtest: {report['label']}",
        f"Started {report['started_at']}; {target}; {report['warmup_requests']} warm-up requests first.",
        machine_lines(report),
        "## Latency (ms, from each request's due time) and throughput\n\n" + latency_table(report["levels"]),
        "## CPU per answer (ms; in brackets the busiest process of the kind, in cores)\n\n"
        + cpu_table(report["levels"]),
        "## Memory\n\n" + memory_table(report["memory"]),
    ]
    if errors:
        parts.append("## Errors (examples)\n\n" + "\n".join(errors))
    parts += [f"![{name}]({name})" for name in images]
    return "\n\n".join(parts) + "\n"
