"""`python -m lobe.devtools.coverage_summary COVERAGE_XML`: the line coverage of a `make coverage`
run as Markdown, in total and per package (gateway, chat_worker, billing, metrics, shared, devtools),
on stdout and, in GitHub Actions, appended to the job's summary ($GITHUB_STEP_SUMMARY). The
per-file detail is the HTML report CI keeps as an artifact."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path


def line_counts(report: str) -> dict[str, tuple[int, int]]:
    """(covered, measured) lines per package: a file's first path part below `lobe/`."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    seen: set[str] = set()
    for cls in ET.fromstring(report).iter("class"):
        filename = cls.get("filename", "")
        if filename in seen:  # coverage.py lists a file once; guard against merged reports
            continue
        seen.add(filename)
        lines = [int(line.get("hits", "0")) for line in cls.iter("line")]
        entry = counts[filename.split("/", 1)[0] if "/" in filename else "(top level)"]
        entry[0] += sum(1 for hits in lines if hits > 0)
        entry[1] += len(lines)
    return {name: (covered, measured) for name, (covered, measured) in sorted(counts.items())}


def _percent(covered: int, measured: int) -> str:
    return f"{100 * covered / measured:.1f} %" if measured else "n/a"


def render(counts: dict[str, tuple[int, int]]) -> str:
    covered = sum(c for c, _ in counts.values())
    measured = sum(m for _, m in counts.values())
    lines = [
        f"### Line coverage: {_percent(covered, measured)}",
        "",
        "| package | lines | covered | coverage |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {m} | {c} | {_percent(c, m)} |" for name, (c, m) in counts.items()]
    lines += [f"| **total** | {measured} | {covered} | {_percent(covered, measured)} |", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    summary = render(line_counts(Path(argv[0]).read_text()))
    sys.stdout.write(summary)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
