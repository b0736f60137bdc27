"""The README stays true: its configuration reference is what the code reads."""

from __future__ import annotations

from pathlib import Path

from lobe.devtools.config_reference import END, START, render

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_reference_matches_the_settings_classes() -> None:
    text = README.read_text()
    documented = text[text.index(START) : text.index(END) + len(END)]
    assert documented == render(), "README is stale: python -m lobe.devtools.config_reference"


def test_every_setting_is_described() -> None:
    rows = [line for line in render().splitlines() if line.startswith("| `")]
    undescribed = [row.split("|")[1].strip() for row in rows if not row.rstrip(" |").split("|")[-1].strip()]
    assert undescribed == []
