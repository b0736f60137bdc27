"""`python -m lobe.devtools.openapi`: write the HTTP APIs' OpenAPI documents to docs/openapi/
(`--check`: exit 1 when the committed ones differ from what the services describe)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lobe.billing.openapi import billing_openapi
from lobe.gateway.openapi import gateway_openapi

# devtools/src/lobe/devtools/openapi.py -> the repository root is four levels up.
ROOT = Path(__file__).resolve().parents[4]
DOCS = Path("docs/openapi")


def documents() -> dict[Path, str]:
    """Each document, by path relative to the repository root."""
    docs = {"gateway": gateway_openapi(), "billing": billing_openapi()}
    return {DOCS / f"{name}.json": json.dumps(doc, indent=2) + "\n" for name, doc in docs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lobe.devtools.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = [
        path
        for path, text in documents().items()
        if not (ROOT / path).exists() or (ROOT / path).read_text() != text
    ]
    if args.check:
        for path in stale:
            print(f"out of date: {path} (run python -m lobe.devtools.openapi)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        (ROOT / path).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / path).write_text(documents()[path])
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
