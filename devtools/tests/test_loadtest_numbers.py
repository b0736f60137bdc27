"""The load test's arithmetic: answer checks, percentiles, levels, CPU per kind, reports."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from lobe.devtools.loadtest import report as reports
from lobe.devtools.loadtest.load import Level, LevelRun, run_level
from lobe.devtools.loadtest.outcome import AnswerCheck, Outcome
from lobe.devtools.loadtest.processes import Reading, cpu_by_kind, rss_by_process
from lobe.devtools.loadtest.shape import PROMPT_TOKENS, Shape, text_of
from lobe.devtools.loadtest.stats import error_kinds, percentile, summarize, timeline


def complete(check: AnswerCheck, parts: list[str]) -> AnswerCheck:
    for part in parts:
        check.add(part)
    check.finish = "stop"
    check.prompt_tokens, check.completion_tokens = PROMPT_TOKENS, check.shape.chunks
    return check


def test_an_answer_passes_only_with_the_exact_text_chunks_finish_and_usage() -> None:
    shape = Shape(chunks=3)
    parts = [text_of(i) for i in range(3)]
    assert complete(AnswerCheck(shape), parts).verdict() is None
    assert complete(AnswerCheck(shape), parts[:2]).verdict().startswith("content")  # type: ignore[union-attr]
    assert complete(AnswerCheck(shape), [parts[1], parts[0], parts[2]]).verdict().startswith("content")  # type: ignore[union-attr]
    merged = [parts[0] + parts[1], parts[2]]
    assert complete(AnswerCheck(shape), merged).verdict() == "chunks: got 2, expected 3"
    assert complete(AnswerCheck(shape, coalesced=True), merged).verdict() is None
    unfinished = complete(AnswerCheck(shape), parts)
    unfinished.finish = "length"
    assert unfinished.verdict() == "finish_reason: got 'length', expected 'stop'"
    no_usage = complete(AnswerCheck(shape), parts)
    no_usage.prompt_tokens = None
    assert no_usage.verdict() == "usage: missing"
    wrong_usage = complete(AnswerCheck(shape), parts)
    wrong_usage.completion_tokens = 2
    assert wrong_usage.verdict() == f"usage: got {PROMPT_TOKENS}+2 tokens, expected {PROMPT_TOKENS}+3"


def test_percentiles_interpolate_between_ranks_and_are_ordered() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0) == 1
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100
    assert math.isnan(percentile([], 50))
    assert [percentile([7.0], p) for p in (50, 99)] == [7.0, 7.0]


def test_a_level_runs_a_count_or_a_duration_never_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        Level("closed", 8, requests=10, duration_s=1)
    with pytest.raises(ValueError, match="not both"):
        Level("open", 8)
    with pytest.raises(ValueError, match="positive"):
        Level("open", 0, requests=1)


async def test_closed_loop_sends_exactly_the_count_with_at_most_the_concurrency_in_flight() -> None:
    in_flight, peak, calls = 0, 0, 0

    async def target(due: float) -> Outcome:
        nonlocal in_flight, peak, calls
        in_flight += 1
        calls += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return Outcome(due, ttft_s=0.001, total_s=0.002)

    run = await run_level(target, Level("closed", 4, requests=37), progress=False)
    assert calls == len(run.outcomes) == 37
    assert peak == 4


async def test_open_loop_schedules_request_i_at_i_over_rate_whatever_the_answers_take() -> None:
    dues: list[float] = []

    async def slow(due: float) -> Outcome:
        dues.append(due)
        await asyncio.sleep(0.05)  # far longer than the 5 ms between arrivals
        return Outcome(due, total_s=0.05)

    run = await run_level(slow, Level("open", 200, requests=20), progress=False)
    assert len(run.outcomes) == 20
    gaps = [b - a for a, b in zip(sorted(dues), sorted(dues)[1:], strict=False)]
    assert gaps == pytest.approx([0.005] * 19)
    assert dues[0] == pytest.approx(run.began)


def test_summary_counts_only_valid_answers_as_throughput_and_groups_errors() -> None:
    outcomes = [Outcome(0.0, ttft_s=0.001 * i, total_s=0.002 * i) for i in range(1, 9)]
    outcomes += [Outcome(0.0, total_s=0.1, error="http 503: busy"), Outcome(0.0, error="content: got 'x'")]
    outcomes.append(Outcome(0.0, error="http 503: again"))
    run = LevelRun(Level("closed", 2, requests=11), outcomes, began=0.0, ended=2.0)
    summary = summarize(run)
    assert (summary["requests"], summary["ok"], summary["errors"]) == (11, 8, 3)
    assert summary["throughput_rps"] == 4.0
    assert summary["error_kinds"] == {"http 503": 2, "content": 1}
    assert error_kinds(outcomes) == summary["error_kinds"]
    ttft = summary["ttft_ms"]
    assert ttft["min"] <= ttft["p50"] <= ttft["p90"] <= ttft["p99"] <= ttft["p99.9"] <= ttft["max"] == 8.0
    rows = timeline(run, window_s=0.01)
    assert sum(row["completed"] for row in rows) == 11
    assert sum(row["errors"] for row in rows) == 3


def test_cpu_per_kind_counts_new_processes_from_zero_and_names_the_busiest() -> None:
    start = {1: Reading("gateway", 10.0, 0), 2: Reading("gateway", 5.0, 0), 3: Reading("nats", 1.0, 0)}
    end = {1: Reading("gateway", 11.5, 0), 2: Reading("gateway", 5.5, 0), 3: Reading("nats", 1.25, 0)}
    end[4] = Reading("chat-worker", 0.5, 0)  # started in between
    kinds = cpu_by_kind(start, end, wall_s=2.0)
    assert kinds["gateway"] == {"cpu_s": 2.0, "processes": 2, "busiest_cores": 0.75}
    assert kinds["nats"]["cpu_s"] == 0.25
    assert kinds["chat-worker"]["cpu_s"] == 0.5


def readings_every_5s(
    private_mib: Callable[[float], float], seconds: int = 600
) -> list[tuple[float, dict[int, Reading]]]:
    mib = 2**20
    return [
        (float(t), {7: Reading("nats", 0.0, int((private_mib(t) + 10) * mib), int(private_mib(t) * mib))})
        for t in range(0, seconds + 1, 5)
    ]


def test_memory_growth_is_judged_after_the_warm_up_on_medians_so_a_sawtooth_is_not_growth() -> None:
    # Fills 30 MiB in the first minute (caches warming), then swings 0-18 MiB between collections.
    def sawtooth(t: float) -> float:
        return 20 + min(t, 60) / 2 + (t % 60) * 0.3

    (row,) = rss_by_process(readings_every_5s(sawtooth))
    assert row["growth_mb"] == pytest.approx(0.0)
    assert row["rss_peak_mb"] == pytest.approx(20 + 30 + 55 * 0.3 + 10)
    # (Its first and last three readings, the earlier method, differ by 36.5 MiB: a failed soak.)


def test_memory_growth_after_the_warm_up_is_measured() -> None:
    def leak(t: float) -> float:  # 3 MiB a minute, every minute
        return 50 + t / 20

    (row,) = rss_by_process(readings_every_5s(leak))
    # Medians of [60, 120] s and [540, 600] s: 90 s and 570 s, 24 MiB apart.
    assert row["growth_mb"] == pytest.approx(24.0)
    assert row["rss_start_mb"] == pytest.approx(leak(90) + 10)
    assert row["rss_end_mb"] == pytest.approx(leak(570) + 10)


def test_a_run_too_short_for_the_warm_up_is_judged_from_its_first_reading() -> None:
    (row,) = rss_by_process(readings_every_5s(lambda t: 50 + t, seconds=100), window_s=10, settle_s=90)
    assert row["growth_mb"] == pytest.approx(145 - 55)  # median of [90, 100] s against [0, 10] s


def test_the_report_writes_json_markdown_and_plots_and_nan_becomes_null(tmp_path: Path) -> None:
    outcomes = [Outcome(0.0, ttft_s=0.001, total_s=0.002), Outcome(0.0, error="timeout: slow")]
    level = summarize(LevelRun(Level("closed", 1, requests=2), outcomes, 0.0, 1.0))
    level |= {"cpu": {}, "suite_cpu_ms_per_request": math.nan, "suite_cores": 0.0, "timeline": []}
    report = {
        "label": "t",
        "started_at": "now",
        "target": {"path": "x"},
        "machine": {"cpu_model": "cpu", "cpus": 2, "memory_gib": 1, "system": "Linux", "python": "3"},
        "loadavg_before": [0.1, 0.1, 0.1],
        "loadavg_after": [0.2, 0.2, 0.2],
        "machine_note": "quiet",
        "warmup_requests": 0,
        "levels": [level],
        "errors": 1,
        "memory": [],
        "rss_timeline": [],
    }
    written = reports.write(report, tmp_path, "r")
    assert sorted(p.name for p in written) == ["r-load.png", "r-time.png", "r.json", "r.md"]
    assert json.loads((tmp_path / "r.json").read_text())["levels"][0]["suite_cpu_ms_per_request"] is None
    text = (tmp_path / "r.md").read_text()
    assert "| c=1 | 2 | 1 | 1 |" in text
    assert "- c=1: timeout: slow" in text


def test_bench_waits_for_a_quiet_machine_only_as_long_as_it_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    from lobe.devtools.loadtest import bench, machine

    monkeypatch.setattr(machine, "loadavg", lambda: [9.0, 9.0, 9.0])
    assert bench.wait_quiet(0) is False
    monkeypatch.setattr(machine, "loadavg", lambda: [0.0, 0.0, 0.0])
    assert bench.wait_quiet(0) is True
