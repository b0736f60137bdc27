"""`lobe bench litellm` without LiteLLM: the pins, the config it writes, the venv it reuses, the
processes it counts as LiteLLM, and the section it renders from measured reports.

(The measurement itself needs LiteLLM installed and minutes of load: `make bench-litellm`.)"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from lobe.devtools.loadtest import bench_doc, litellm_proxy
from lobe.devtools.loadtest.http_client import HttpTarget, client_session
from lobe.devtools.loadtest.load import Level
from lobe.devtools.loadtest.measure import Plan, measure
from lobe.devtools.loadtest.processes import ProcessWatch
from lobe.devtools.loadtest.shape import MODEL, Shape
from lobe.devtools.loadtest.upstream import FastUpstream

LEVELS = [Level("closed", c, requests=c + 4) for c in bench_doc.STANDARD_LOADS]


def test_the_constraints_pin_litellm_and_every_package_its_proxy_needs_by_exact_version() -> None:
    lines = [
        line.strip()
        for line in litellm_proxy.CONSTRAINTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert re.fullmatch(r"\d+\.\d+\.\d+", litellm_proxy.pinned_version())
    for line in lines:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+\-]+", line), line
    names = {line.split("==")[0].lower() for line in lines}
    # What `litellm --num_workers 2` starts with: the ASGI server, its event loop, the app.
    assert {"litellm", "uvicorn", "uvloop", "fastapi", "openai", "pyyaml"} <= names


def test_the_pinned_version_is_the_litellm_line_not_a_package_named_alike(tmp_path: Path) -> None:
    constraints = tmp_path / "c.txt"
    constraints.write_text(
        "# litellm==0.0.1 in a comment\nlitellm-enterprise==9.9\nLiteLLM==1.2.3  # measured\n"
    )
    assert litellm_proxy.pinned_version(constraints) == "1.2.3"
    constraints.write_text("uvicorn==1\n")
    with pytest.raises(ValueError, match="no litellm== line"):
        litellm_proxy.pinned_version(constraints)


def test_the_config_routes_the_one_model_to_the_upstream_with_no_database_and_no_logs() -> None:
    text = yaml.safe_dump(litellm_proxy.proxy_config("http://127.0.0.1:9/v1", MODEL, "sk-bench-x"))
    config = yaml.safe_load(text)  # as LiteLLM reads the file
    (deployment,) = config["model_list"]
    assert deployment["model_name"] == MODEL
    assert deployment["litellm_params"] == {
        "model": f"openai/{MODEL}",
        "api_base": "http://127.0.0.1:9/v1",
        "api_key": "none",
    }
    general = config["general_settings"]
    assert general["master_key"] == "sk-bench-x"
    assert general["disable_spend_logs"] is True
    assert general["disable_error_logs"] is True
    assert "database_url" not in general
    settings = config["litellm_settings"]
    assert settings["set_verbose"] is False
    assert not {"callbacks", "success_callback", "failure_callback", "cache"} & set(settings)
    assert litellm_proxy.ENVIRONMENT["LITELLM_LOG"] == "ERROR"
    assert litellm_proxy.ENVIRONMENT["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"  # nothing fetched at start


def test_a_venv_installed_from_these_very_constraints_is_reused_as_it_is(tmp_path: Path) -> None:
    constraints = tmp_path / "c.txt"
    constraints.write_text("litellm==1.2.3\n")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "litellm").write_text("#!/bin/sh\n")
    (venv / ".lobe-constraints.sha256").write_text(hashlib.sha256(constraints.read_bytes()).hexdigest())
    # No python in this venv: anything but reuse would fail.
    assert litellm_proxy.ensure_venv(venv, constraints) == venv / "bin" / "litellm"


def test_every_process_under_a_named_root_is_counted_as_that_kind() -> None:
    # A parent and the child it spawned, as LiteLLM's CLI and its multiprocessing workers are.
    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        # Waiting on the child itself: the test process's own children (servers other tests
        # started) are read too, so a count of readings says nothing about it.
        while not (children := psutil.Process(parent.pid).children()):
            assert time.monotonic() < deadline, "the child did not start"
            time.sleep(0.05)
        family = {parent.pid, *(child.pid for child in children)}
        readings = ProcessWatch([parent.pid], root_kinds={parent.pid: "litellm"}).read()
        unnamed = ProcessWatch([parent.pid]).read()
    finally:
        for child in psutil.Process(parent.pid).children():
            child.kill()
        parent.kill()
        parent.wait()
    assert len(family) == 2
    assert family <= set(readings)
    assert family <= set(unnamed)
    assert {readings[pid].kind for pid in family} == {"litellm"}
    assert {unnamed[pid].kind for pid in family} != {"litellm"}


async def _measured(upstream: FastUpstream, label: str, target: dict[str, Any]) -> dict[str, Any]:
    async with client_session(10) as http:
        load = HttpTarget(http, [upstream.url], "none", upstream.answers.shape, model=MODEL)
        plan = Plan(label, LEVELS, target, warmup=2, progress=False)
        return await measure(load, plan, ProcessWatch([]))


async def test_the_section_sets_the_three_paths_side_by_side_with_the_ratios_between_systems(
    tmp_path: Path,
) -> None:
    shape = Shape(chunks=4)
    upstream = await FastUpstream(shape).start()
    try:
        answer = {"answer": shape.describe()}
        litellm_target = answer | {"path": "LiteLLM proxy 9.9.9, 2 workers", "litellm": "9.9.9"}
        results = {
            "direct": await _measured(upstream, "direct", answer | {"path": "direct"}),
            "litellm": await _measured(upstream, "litellm", litellm_target | {"settings": "SETTINGS-TEXT"}),
            "suite": await _measured(upstream, "suite", answer | {"path": "gateway SSE"}),
        }
    finally:
        await upstream.stop()
    # Recorded CPU per answer (the in-process upstream's processes are not watched here).
    for name, cpu_ms in (("litellm", 60.0), ("suite", 12.0)):
        for level in results[name]["levels"]:
            level["suite_cpu_ms_per_request"], level["suite_cores"] = cpu_ms, 0.5
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nThe reading, by hand.\n")
    args = argparse.Namespace(
        requests=9, chunks=4, ttft_ms=0.0, tokens_per_s=0.0, cache_miss=True, tracing=False
    )
    bench_doc.write_litellm(doc, results, tmp_path / "bench" / "litellm-load.png", args)

    text = doc.read_text()
    assert text.startswith("# Performance\n\nThe reading, by hand.\n")
    section = text.split("<!-- loadtest-litellm:start -->")[1].split("<!-- loadtest-litellm:end -->")[0]
    assert "`lobe bench litellm --requests 9 --chunks 4 --ttft-ms 0 --tokens-per-s 0 --cache-miss`" in section
    assert "SETTINGS-TEXT" in section
    assert "`litellm[proxy]==9.9.9`" in section
    assert "spans recorded but not exported" in section
    assert machine_line(results["litellm"]) in section
    for name, row in (
        ("direct", "direct to the fake upstream"),
        ("litellm", "LiteLLM proxy 9.9.9, 2 workers"),
    ):
        rates = " / ".join(f"{level['throughput_rps']:,.0f}" for level in results[name]["levels"])
        assert f"| {rates} | 0 |" in _row(section, f"| {row} |")
    assert "| **added by LiteLLM proxy 9.9.9, 2 workers** |" in section
    assert "| **added by this suite** |" in section
    ratios = [
        f"{s['throughput_rps'] / lt['throughput_rps']:.2f} times"
        for s, lt in zip(results["suite"]["levels"], results["litellm"]["levels"], strict=True)
    ]
    assert (
        _row(section, "| answers/s, suite ÷ LiteLLM |")
        == "| answers/s, suite ÷ LiteLLM | " + " | ".join(ratios) + " |"
    )
    assert _row(section, "| CPU per answer, LiteLLM ÷ suite |").count("5.00 times") == 4
    assert "(bench/litellm-load.png)" in section

    bench_doc.write_litellm(doc, results, tmp_path / "bench" / "litellm-load.png", args)
    assert doc.read_text() == text  # rewritten in place, once


def _row(section: str, start: str) -> str:
    return next(line for line in section.splitlines() if line.startswith(start))


def machine_line(report: dict[str, Any]) -> str:
    before = " / ".join(f"{x:.2f}" for x in report["loadavg_before"])
    return f"- load average (1/5/15 min): {before} before"
