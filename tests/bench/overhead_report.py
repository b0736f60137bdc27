"""Numbers of the gateway-overhead benchmark → a table, a plot, and its section of docs/performance.md.

Only the text between this benchmark's markers is replaced: other benchmarks own other sections.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

START = "<!-- gateway-overhead:start -->"
END = "<!-- gateway-overhead:end -->"


@dataclass
class Sample:
    ttft: float  # seconds
    total: float
    ok: bool = True


@dataclass
class Series:
    label: str
    concurrency: int
    samples: list[Sample]
    wall_s: float
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds each process spent meanwhile

    def pct(self, metric: str, p: int) -> float:
        """The p-th percentile of `ttft` or `total`, in milliseconds."""
        values = [float(getattr(s, metric)) * 1000 for s in self.samples if s.ok]
        return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def render(results: list[tuple[Series, Series]]) -> str:
    head = (
        "| mode | requests | path | TTFT p50 | TTFT p99 | total p50 | total p99 | throughput |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|"
    )
    rows = [head]
    for direct, gateway in results:
        mode = "sequential" if direct.concurrency == 1 else f"concurrency {direct.concurrency}"
        for series in (direct, gateway):
            cells = [f"{series.pct(m, p):.1f} ms" for m in ("ttft", "total") for p in (50, 99)]
            rate = f"{len(series.samples) / series.wall_s:.0f} req/s"
            path = series.label.split(",")[0]
            rows.append(f"| {mode} | {len(series.samples)} | {path} | {' | '.join(cells)} | {rate} |")
        added = [
            f"**{gateway.pct(m, p) - direct.pct(m, p):+.1f} ms**" for m in ("ttft", "total") for p in (50, 99)
        ]
        rows.append(f"| {mode} | | gateway added | {' | '.join(added)} | |")
    rows += ["", "CPU time per request on the gateway path (all processes' user + system time, divided", ""]
    rows[-2] += " by the requests of that run):"
    names = list(results[0][1].cpu_s)
    header = "| mode | " + " | ".join(names) + " | CPUs these kept busy |"
    rows += [header, "|---|" + "---:|" * (len(names) + 1)]
    for _, gateway in results:
        mode = "sequential" if gateway.concurrency == 1 else f"concurrency {gateway.concurrency}"
        cells = [f"{gateway.cpu_s[n] * 1000 / len(gateway.samples):.2f} ms" for n in names]
        busy = sum(gateway.cpu_s.values()) / gateway.wall_s
        rows.append(f"| {mode} | " + " | ".join(cells) + f" | {busy:.2f} |")
    return "\n".join(rows)


def machine(load_before: tuple[float, float, float], load_after: tuple[float, float, float]) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?"
    )
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal")), 0)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = load_before[0] / (cpus or 1)
    if share >= 0.25:
        level = "loaded" if share >= 0.75 else "partly loaded"
        loaded = (
            f"**The machine was {level}** by other jobs sharing it: 1-minute load average "
            f"{load_before[0]:.2f} on {cpus} CPUs just before the run. The gateway path runs more "
            "processes than the direct one and suffers more from that, so read the added time, "
            "the concurrent p99 above all, as an upper bound."
        )
    else:
        loaded = (
            f"The machine was otherwise idle (1-minute load average {load_before[0]:.2f} before the run)."
        )
    return (
        f"- CPU: {model}, {cpus} CPUs available (`nproc`), {mem_kb / 1024 / 1024:.1f} GiB memory\n"
        f"- {platform.system()} {platform.release()}, Python {platform.python_version()}\n"
        f"- Load average (1/5/15 min): {' / '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{' / '.join(f'{x:.2f}' for x in load_after)} after.\n\n{loaded}"
    )


def write_section(
    doc: Path,
    machine_text: str,
    args: argparse.Namespace,
    table: str,
    plot: Path,
    failures: int,
    events: int,
) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    billing_note = (
        ", and billing in its own process with its PostgreSQL: every request is admitted against the "
        "user's budget (a NATS round trip and one PostgreSQL transaction before dispatch) and priced for "
        "its final chunk (one more round trip after the last token)"
        if args.billing
        else " (billing off: `--no-billing`, no budget admission)"
    )
    section = f"""{START}
## Gateway added latency

What the gateway path (gateway → NATS → chat worker → provider adapter) adds to a streamed chat
completion, compared with calling the same fake provider directly. Measured {when} with
`python tests/bench/gateway_overhead.py --sequential {args.sequential} --concurrent {args.concurrent} \\
--concurrency {args.concurrency} --event-delay-ms {args.event_delay_ms:g}{"" if args.billing else " --no-billing"}`.

**Machine.**

{machine_text}

**Method.** Everything runs on this one machine over loopback, each in its own process: a real
`nats-server` with JetStream, a fake OpenAI upstream (`lobe.devtools.fake_upstream`) replaying the
recorded `openai/chat_stream_text.sse` transcript ({events} SSE events, one HTTP chunk each, with a
{args.event_delay_ms:g} ms pause between events, as a fast model would), one `python -m lobe.chat_worker`
with `MODELS_FILE` routing the model `bench` to that upstream, and one `python -m lobe.gateway`.
An aiohttp client streams `POST /v1/chat/completions` (a) from the fake upstream directly and (b)
from the gateway. Time to first token (TTFT) is the arrival of the first non-empty `content`
delta; total is the end of the body (`[DONE]`). Each path first gets {args.warmup} unmeasured
requests; then {args.sequential} requests one at a time, then {args.concurrent} requests with
{args.concurrency} in flight. The fake upstream closes each connection after its answer, so both
paths pay one loopback TCP connect to the provider per request; the client keeps its connection to
the gateway. Every answer is checked against the transcript's text ({failures} were wrong or
incomplete). The gateway path includes a usage event published to JetStream per request{billing_note}.
Logging at WARNING, tracing off.

{table}

"Gateway added" is the gateway percentile minus the direct percentile (percentiles do not
subtract exactly, so a small negative number means "no measurable difference"). At concurrency
{args.concurrency} the measuring client, the fake upstream and the gateway path's processes
share {os.cpu_count()} CPUs; the last column shows how much of the machine the gateway path alone
kept busy, so its concurrent p99 includes time spent waiting for a CPU, not only work done by the
gateway and worker. The CPU cost per request is the number that scales (one at a time it is
higher: every SSE event wakes each process on its own; under load the wake-ups are shared).
Distributions:

![Latency distributions, direct vs gateway]({plot.as_posix()})
{END}"""
    text = doc.read_text() if doc.exists() else "# Performance\n"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def write_plot(results: list[tuple[Series, Series]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 4 * len(results)), squeeze=False)
    for row, pair in enumerate(results):
        for col, metric in enumerate(("ttft", "total")):
            ax = axes[row][col]
            for series, color in zip(pair, ("tab:blue", "tab:orange"), strict=True):
                values = sorted(getattr(s, metric) * 1000 for s in series.samples if s.ok)
                fractions = [(i + 1) / len(values) for i in range(len(values))]
                ax.step(values, fractions, where="post", color=color, label=series.label.split(",")[0])
                ax.axvline(series.pct(metric, 99), color=color, linestyle=":", linewidth=1)
            mode = "sequential" if pair[0].concurrency == 1 else f"concurrency {pair[0].concurrency}"
            ax.set_title(f"{'time to first token' if metric == 'ttft' else 'total time'}, {mode}")
            ax.set_xlabel("milliseconds (dotted: p99)")
            ax.set_ylabel("fraction of requests")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
