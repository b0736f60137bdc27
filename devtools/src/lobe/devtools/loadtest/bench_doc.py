"""The benchmark sections of docs/performance.md, generated from `lobe bench` reports."""

from __future__ import annotations

import argparse
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lobe.devtools.loadtest import flame, plots
from lobe.devtools.loadtest.perf_doc import replace_section
from lobe.devtools.loadtest.processes import NOT_SUITE
from lobe.devtools.loadtest.report import cpu_table, latency_table, machine_lines

Report = dict[str, Any]
STANDARD_LOADS = (1, 8, 32, 128)


def _ms(value: float | None, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.1f} ms" if sign else f"{value:.1f} ms"


def _level(report: Report, load: float) -> Report | None:
    return next((level for level in report["levels"] if level["load"] == load), None)


def _rates(report: Report, loads: tuple[int, ...]) -> str:
    cells = []
    for load in loads:
        level = _level(report, load)
        cells.append("-" if level is None else f"{level['throughput_rps']:,.0f}")
    return " / ".join(cells)


def _shape_flags(args: argparse.Namespace) -> str:
    """The flags that shaped the run, for the command line a section quotes."""
    flags = f"--chunks {args.chunks} --ttft-ms {args.ttft_ms:g} --tokens-per-s {args.tokens_per_s:g}"
    flags += " --cache-miss" if getattr(args, "cache_miss", False) else ""
    return flags + (" --tracing" if getattr(args, "tracing", False) else "")


def _tracing(args: argparse.Namespace) -> str:
    if getattr(args, "tracing", False):
        return (
            "tracing as in production: every span recorded and exported over OTLP/HTTP in batches, "
            "to a receiver in the client process (`--tracing`)"
        )
    return "spans recorded but not exported (no OTLP endpoint; `--tracing` exports them)"


def _when(report: Report) -> str:
    """When the (first) measurement started, in UTC."""
    return datetime.fromisoformat(report["started_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _rel(path: Path, doc: Path) -> str:
    return os.path.relpath(path, doc.parent)


def _paths_table(results: dict[str, Report], names: dict[str, str], added: dict[str, str]) -> str:
    """Each path's latency at concurrency 1 and answers/s at every standard level, then for each
    path in `added` what it adds to the direct one (the first) in bold."""
    head = (
        "| path | TTFT p50 | TTFT p99 | total p50 | total p99 | answers/s at c=1 / 8 / 32 / 128 | errors |\n"
        "|---|---:|---:|---:|---:|---|---:|"
    )
    rows = [head]
    one = {name: _level(report, 1) for name, report in results.items()}
    for name, report in results.items():
        level = one[name]
        if level is None:
            continue
        cells = [_ms(level[m].get(p)) for m in ("ttft_ms", "total_ms") for p in ("p50", "p99")]
        rows.append(
            f"| {names[name]} | {' | '.join(cells)} | {_rates(report, STANDARD_LOADS)} | {report['errors']} |"
        )
    base = one["direct"]
    for name, label in added.items():
        level = one[name]
        if level is None or base is None:
            continue
        cells = [
            _ms(level[m][p] - base[m][p], sign=True) for m in ("ttft_ms", "total_ms") for p in ("p50", "p99")
        ]
        rows.append(f"| **added by {label}** | " + " | ".join(f"**{c}**" for c in cells) + " | | |")
    return "\n".join(rows)


def write_standard(doc: Path, results: dict[str, Report], plot: Path, args: argparse.Namespace) -> None:
    direct, suite = results["direct"], results["suite"]
    names = {
        "direct": "direct to the fake upstream",
        "suite": "this suite, HTTP (gateway)",
        "bus": "this suite, bus only",
    }
    table = _paths_table(results, names, {"suite": "HTTP (gateway)", "bus": "bus only"})
    c32 = _level(suite, 32)
    when = _when(direct)
    body = f"""## The standard set (`make bench`)

Measured {when} with `lobe bench standard --requests {args.requests} {_shape_flags(args)}`
(what `make bench` runs). Latencies and added time are at concurrency 1 (sequential); every
answer was validated (content, chunk count, finish reason, usage); an error fails the run.

{machine_lines(suite)}

**Method.** One client process (`lobe loadtest`'s aiohttp client, {direct["warmup_requests"]} warm-up
requests per path) against, in turn: the fake upstream alone (`python -m lobe.devtools.loadtest.upstream`,
{direct["target"]["answer"]}); the suite under `lobe dev --fake-upstream --plan enterprise`
(gateway, chat worker, billing with its PostgreSQL, metrics, NATS, Redis, each its own process;
every request admitted against the enterprise user's budget, which never limits); and the same
suite's bus, `chat.request` published straight to the workers as `lobe.shared.events.chat`
documents it (no gateway, no budget). Closed loop: each of c lanes sends its next request when the
previous answer ends. TTFT is the first non-empty content delta; total is `[DONE]` (HTTP) or the
`done` frame (bus). Logging at WARNING; {_tracing(args)}.

{table}

Every level of the suite over HTTP (ms):

{latency_table(suite["levels"])}

CPU per streamed answer per kind of process (ms of CPU time, user + system; in brackets the
busiest process of that kind in cores: near 1.00 a process is saturated). "suite" adds up the
suite's processes (not the client, the fake upstream or `lobe dev` itself):

{cpu_table(suite["levels"])}

{_c32_sentence(c32)} Reports: `docs/bench/standard-*.json` / `.md`.

![latency percentiles and throughput against load]({_rel(plot, doc)})
"""
    replace_section(doc, "loadtest-standard", body)


def _c32_sentence(level: Report | None) -> str:
    if level is None:
        return ""
    return (
        f"At concurrency 32 the suite spent {_ms(level['suite_cpu_ms_per_request'])} of CPU per streamed "
        f"answer and kept {level['suite_cores']:.2f} cores busy."
    )


def busiest(level: Report) -> tuple[str, float]:
    """The suite's busiest single process at this level: (kind, cores)."""
    suite = {k: v for k, v in level["cpu"].items() if k not in NOT_SUITE}
    kind = max(suite, key=lambda k: suite[k]["busiest_cores"])
    return kind, suite[kind]["busiest_cores"]


def write_scaling(doc: Path, results: list[tuple[int, int, Report]], args: argparse.Namespace) -> None:
    head = (
        "| gateways | workers | answers/s c=32 | answers/s c=128 | TTFT p99 c=128 | suite CPU s per 1,000 answers "
        "(c=128) | busiest process (c=128) | suite cores (c=128) | errors |\n"
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|"
    )
    rows = [head]
    for gateways, workers, report in results:
        c32, c128 = _level(report, 32), _level(report, 128)
        if c32 is None or c128 is None:
            continue
        kind, cores = busiest(c128)
        rows.append(
            f"| {gateways} | {workers} | {c32['throughput_rps']:,.0f} | {c128['throughput_rps']:,.0f} | "
            f"{_ms(c128['ttft_ms'].get('p99'))} | {c128['suite_cpu_ms_per_request']:.2f} | {kind} {cores:.2f} cores | "
            f"{c128['suite_cores']:.2f} | {report['errors']} |"
        )
    plot = plots.scaling(results, args.out / "scaling.png")
    when = _when(results[0][2]) if results else "-"
    body = f"""## Scaling: workers and gateways

Measured {when} with `lobe bench scaling --requests {args.requests} {_shape_flags(args)}`: for
each shape of the suite, a fresh `lobe dev --workers W --gateways G --fake-upstream --plan enterprise`
loaded over HTTP at concurrency 32 and 128 (several gateways share the client's requests round
robin, as a load balancer would). CPU per 1,000 answers is the suite's CPU seconds (all its
processes) per 1,000 streamed answers; the busiest process is the single suite process with the
most CPU time in that level, in cores.

{machine_lines(results[0][2]) if results else ""}

{chr(10).join(rows)}

Per-kind CPU of each shape: `docs/bench/scaling-g*-w*.md`.

![throughput by suite shape]({_rel(plot, doc)})
"""
    replace_section(doc, "loadtest-scaling", body)


def write_soak(doc: Path, report: Report, bound_mb: float, plot: Path, args: argparse.Namespace) -> None:
    """Memory per kind of process (summed over its processes) at start and end, the worst single
    process's private growth against the bound, and the p99 of the first and last minute."""
    kinds: dict[str, dict[str, float]] = {}
    for row in report["memory"]:
        entry = kinds.setdefault(row["kind"], {"start": 0.0, "end": 0.0, "worst": -math.inf, "n": 0})
        entry["start"] += row["rss_start_mb"]
        entry["end"] += row["rss_end_mb"]
        entry["worst"] = max(entry["worst"], row["growth_mb"])
        entry["n"] += 1
    rows = [
        "| kind | processes | RSS start | RSS end | largest private growth of one process | within bound |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for kind, e in sorted(kinds.items(), key=lambda item: (item[0] in NOT_SUITE, item[0])):
        verdict = "(not the suite)" if kind in NOT_SUITE else ("yes" if e["worst"] <= bound_mb else "**no**")
        rows.append(
            f"| {kind} | {e['n']:.0f} | {e['start']:.1f} MiB | {e['end']:.1f} MiB | {e['worst']:+.1f} MiB | {verdict} |"
        )
    (level,) = report["levels"]
    timeline = level["timeline"]
    first, last = timeline[:60], timeline[-60:]
    when = _when(report)
    body = f"""## Memory over time (`make soak`)

Measured {when} with `lobe bench soak --duration {args.duration:g} --rate {args.rate:g}
--max-rss-growth-mb {bound_mb:g} {_shape_flags(args)}`: the suite under `lobe dev` (one gateway,
one worker, billing on) at a steady open-loop {args.rate:g} requests/s; every process read every
5 s. Start is the median of the second minute (the first is warm-up: pools, caches and JetStream's
block cache fill), end the median of the last minute: medians over a minute, because a collected
heap is a sawtooth (nats-server's swings by 10-20 MiB). The bound applies to each suite process's
private resident memory (RSS minus shared pages).

{machine_lines(report)}

{level["requests"]} requests, {level["errors"]} errors, {level["throughput_rps"]:.1f} answers/s; total-time
p99 per second: {_ms(max((r["total_p99_ms"] for r in first), default=None))} at worst in the first minute,
{_ms(max((r["total_p99_ms"] for r in last), default=None))} at worst in the last.

{chr(10).join(rows)}

![p99 and memory over time]({_rel(plot, doc)})
"""
    replace_section(doc, "loadtest-soak", body)


def write_profile(doc: Path, report: Report, graphs: dict[str, Path], args: argparse.Namespace) -> None:
    """The share of each profiled process's samples spent in the kinds of work `flame.KINDS` names."""
    names = list(graphs)
    found = {name: flame.shares(path) for name, path in graphs.items()}
    rows = ["| share of the process's samples | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for kind in flame.KINDS:
        rows.append(f"| {kind} | " + " | ".join(f"{found[name][kind]:.0f} %" for name in names) + " |")
    (level,) = report["levels"]
    links = ", ".join(f"[{name}]({_rel(path, doc)})" for name, path in graphs.items())
    when = _when(report)
    body = f"""## Where the CPU goes (`make bench-profile`)

py-spy flame graphs ({links}) of the gateway and the chat worker while the suite answered
{level["throughput_rps"]:.0f} streamed requests/s at concurrency 32 ({level["errors"]} errors), 10 s at
200 Hz each, measured {when} with `lobe bench profile {_shape_flags(args)}`. A stack counts once per
row however many of its frames match, and may count in several rows. py-spy samples the stacks
of threads that are not idle, so time a process spends preempted inside a system call counts
where it was: on a loaded machine the socket-write share grows.

{machine_lines(report)}

{chr(10).join(rows)}
"""
    replace_section(doc, "loadtest-profile", body)


def _per_level(results: dict[str, Report], names: dict[str, str], value: Any) -> str:
    """One row per path, one column per standard level: `value(level)` as text."""
    head = "| path | " + " | ".join(f"c={load}" for load in STANDARD_LOADS) + " |"
    rows = [head, "|---|" + "---:|" * len(STANDARD_LOADS)]
    for name, report in results.items():
        cells = ["-" if (level := _level(report, load)) is None else value(level) for load in STANDARD_LOADS]
        rows.append(f"| {names[name]} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _ratio(numerator: Report | None, denominator: Report | None, key: str) -> str:
    if numerator is None or denominator is None or not denominator[key] or math.isnan(denominator[key]):
        return "-"
    return f"{numerator[key] / denominator[key]:.2f} times"


def write_litellm(doc: Path, results: dict[str, Report], plot: Path, args: argparse.Namespace) -> None:
    """The three paths of `lobe bench litellm` side by side, and the ratios between the two
    systems at each level: answers per second, and CPU per answer of each system's processes."""
    direct, litellm, suite = results["direct"], results["litellm"], results["suite"]
    names = {
        "direct": "direct to the fake upstream",
        "litellm": litellm["target"]["path"],
        "suite": "this suite, HTTP (gateway)",
    }
    table = _paths_table(results, names, {"litellm": names["litellm"], "suite": "this suite"})
    cpu = _per_level(
        {"litellm": litellm, "suite": suite},
        names,
        lambda level: f"{_ms(level['suite_cpu_ms_per_request'])} ({level['suite_cores']:.2f} cores)",
    )
    ratios = ["| this suite against LiteLLM | " + " | ".join(f"c={load}" for load in STANDARD_LOADS) + " |"]
    ratios.append("|---|" + "---:|" * len(STANDARD_LOADS))
    for label, key, over, under in (
        ("answers/s, suite ÷ LiteLLM", "throughput_rps", suite, litellm),
        ("CPU per answer, LiteLLM ÷ suite", "suite_cpu_ms_per_request", litellm, suite),
    ):
        cells = [_ratio(_level(over, load), _level(under, load), key) for load in STANDARD_LOADS]
        ratios.append(f"| {label} | " + " | ".join(cells) + " |")
    flags = _shape_flags(args)
    body = f"""## Against LiteLLM (`make bench-litellm`)

Measured {_when(direct)} with `lobe bench litellm --requests {args.requests} {flags}`: three
paths, one after the other in one run, loaded by the same client with the same closed loop at the
same levels, every answer validated the same way (content, chunk count, finish reason, usage); an
error fails the run. Latencies and added time are at concurrency 1 (sequential).

{machine_lines(litellm)}

**Method.** One client process (`lobe loadtest`'s aiohttp client, {direct["warmup_requests"]} warm-up
requests per path) against, in turn: the fake upstream alone (`python -m lobe.devtools.loadtest.upstream`,
{direct["target"]["answer"]}); {names["litellm"]} (`litellm[proxy]=={litellm["target"]["litellm"]}`
from `devtools/bench/litellm-constraints.txt`, in its own virtual environment), one model routed
to that same upstream, with the settings LiteLLM recommends for production: {litellm["target"]["settings"]};
and this suite under `lobe dev --fake-upstream --plan enterprise` as in the standard set (gateway,
chat worker, billing with its PostgreSQL, metrics, NATS, Redis, each its own process; every
request admitted against the enterprise user's budget in billing and rate-limited in Redis{
        ", and asking the response cache, which misses" if getattr(args, "cache_miss", False) else ""
    }).
Logging at WARNING; {_tracing(args)}. So LiteLLM does less per request here than the suite: it
checks a master key and relays the stream, while the suite also reserves and settles a budget,
counts rate limits and records usage.

{table}

CPU per streamed answer of each system (ms of CPU time, user + system, of all its processes: LiteLLM's
CLI and workers; the suite's services, NATS, PostgreSQL and Redis; not the client or the fake
upstream), and the cores it kept busy:

{cpu}

{ratios[0]}
{chr(10).join(ratios[1:])}

Every level (ms): `docs/bench/litellm-litellm.md` and `docs/bench/litellm-suite.md`; reports
`docs/bench/litellm-*.json`.

![latency percentiles and throughput against load: direct, LiteLLM, this suite]({_rel(plot, doc)})
"""
    replace_section(doc, "loadtest-litellm", body)
