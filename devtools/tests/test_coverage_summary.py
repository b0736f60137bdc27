"""`make coverage`'s summary (lobe.devtools.coverage_summary) from a real coverage.py XML report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lobe.devtools.coverage_summary import line_counts

ROOT = Path(__file__).resolve().parents[2]


def test_the_summary_counts_the_lines_coverage_measured_per_package_and_lands_in_the_step_summary(
    tmp_path: Path,
) -> None:
    report, step_summary = tmp_path / "coverage.xml", tmp_path / "summary.md"
    step_summary.write_text("earlier step\n")
    env = {**os.environ, "COVERAGE_FILE": str(tmp_path / ".coverage")}
    measured = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--cov=lobe.devtools.promql",
         f"--cov-report=xml:{report}", "devtools/tests/test_promql.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert measured.returncode == 0, measured.stdout + measured.stderr
    [(package, (covered, lines))] = line_counts(report.read_text()).items()
    assert package == "devtools"
    assert 0 < covered <= lines
    summary = subprocess.run(
        [sys.executable, "-m", "lobe.devtools.coverage_summary", str(report)],
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(step_summary)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert summary.returncode == 0, summary.stderr
    percent = f"{100 * covered / lines:.1f} %"
    assert f"| **total** | {lines} | {covered} | {percent} |" in summary.stdout
    assert step_summary.read_text() == "earlier step\n" + summary.stdout
