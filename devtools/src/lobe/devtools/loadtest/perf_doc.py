"""Sections of docs/performance.md that a benchmark owns, replaced between its markers."""

from __future__ import annotations

import re
from pathlib import Path


def replace_section(doc: Path, name: str, body: str) -> None:
    """Write `body` between `<!-- name:start -->` and `<!-- name:end -->`, appending them if absent."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{body.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else "# Performance\n"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
