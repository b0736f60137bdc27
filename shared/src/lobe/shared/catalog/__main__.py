"""`python -m lobe.shared.catalog`: regenerate docs/events.md and docs/asyncapi.json.

Options:
--check               exit 1 (listing the files) when the committed docs differ from the code
--refresh-snapshots   rewrite shared/tests/contract/snapshots/*.json from the current models
--root DIR            the repository root (default: the checkout this module lives in)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lobe.shared.catalog import contract_models, json_schema

# shared/src/lobe/shared/catalog/__main__.py -> the repository root is five levels up.
DEFAULT_ROOT = Path(__file__).resolve().parents[5]
SNAPSHOT_DIR = Path("shared/tests/contract/snapshots")


def generated_docs() -> dict[Path, str]:
    """Each generated document, by path relative to the repository root."""
    # Imported here: FastStream is only needed to write the docs, never by a running service.
    from lobe.shared.catalog.asyncapi import render_asyncapi
    from lobe.shared.catalog.markdown import render_events_md

    return {Path("docs/asyncapi.json"): render_asyncapi(), Path("docs/events.md"): render_events_md()}


def snapshots() -> dict[Path, str]:
    return {
        SNAPSHOT_DIR / f"{name}.json": json.dumps(json_schema(model), indent=2, sort_keys=True) + "\n"
        for name, model in contract_models().items()
    }


def stale(root: Path, files: dict[Path, str]) -> list[Path]:
    return [path for path, text in files.items() if _read(root / path) != text]


def write(root: Path, files: dict[Path, str]) -> list[Path]:
    changed = stale(root, files)
    for path in changed:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(files[path], encoding="utf-8")
    return changed


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lobe.shared.catalog", description=__doc__)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--refresh-snapshots", action="store_true")
    args = parser.parse_args(argv)
    root: Path = args.root
    files = {**generated_docs(), **(snapshots() if args.refresh_snapshots else {})}
    if args.check:
        drift = stale(root, files)
        for path in drift:
            print(f"out of date: {path} (run python -m lobe.shared.catalog)", file=sys.stderr)
        return 1 if drift else 0
    for path in write(root, files):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
