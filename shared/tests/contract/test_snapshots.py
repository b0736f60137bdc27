"""The public contract: each payload's JSON Schema against its committed snapshot.

Incompatible changes fail, naming model and field; compatible ones pass with a hint to refresh
the snapshots (`python -m lobe.shared.catalog --refresh-snapshots`). An incompatible change is
accepted only together with a `schema_version` bump (docs/events.md, "Versioning policy").
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from lobe.shared.catalog import contract_models, json_schema

from .compat import compare, schema_version_bumped

SNAPSHOTS = Path(__file__).parent / "snapshots"
REFRESH = "python -m lobe.shared.catalog --refresh-snapshots"
MODELS = contract_models()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_schema_has_no_incompatible_change_since_snapshot(name: str) -> None:
    path = SNAPSHOTS / f"{name}.json"
    assert path.exists(), f"{name} has no contract snapshot: run `{REFRESH}` and commit {path.name}"
    before: dict[str, Any] = json.loads(path.read_text())
    after = json_schema(MODELS[name])
    changes = compare(name, before, after)
    broken = [str(c) for c in changes if not c.compatible]
    if broken and not schema_version_bumped(before, after):
        pytest.fail(
            f"incompatible change to the {name} contract:\n  "
            + "\n  ".join(broken)
            + "\nBump schema_version and publish a new subject version (or dual-publish), see "
            "docs/events.md; or revert the change."
        )
    if changes:
        warnings.warn(
            f"{name} changed compatibly ({'; '.join(map(str, changes))}): run `{REFRESH}`", stacklevel=1
        )


def test_every_snapshot_belongs_to_a_current_model() -> None:
    orphans = sorted(p.stem for p in SNAPSHOTS.glob("*.json") if p.stem not in MODELS)
    assert orphans == [], f"snapshots without a model (a payload was removed from the catalog): {orphans}"


def test_refresh_command_writes_the_snapshots_this_test_reads() -> None:
    from lobe.shared.catalog.__main__ import DEFAULT_ROOT, snapshots

    written = {(DEFAULT_ROOT / relative).resolve() for relative in snapshots()}
    assert written == {(SNAPSHOTS / f"{name}.json").resolve() for name in MODELS}
