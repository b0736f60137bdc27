"""An operator's bad YAML file is reported by field and line, whichever loader reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from lobe.shared.config_file import ConfigError, read_yaml, yaml_lines


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    size: int


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[Item]


DOC = """\
# a comment
items:
  - name: a
    size: 1
  - {name: b, size: many}
  - name: c
"""


def test_every_key_and_list_item_has_its_line() -> None:
    lines = yaml_lines(DOC)
    assert lines[("items",)] == 2
    assert (lines[("items", 0)], lines[("items", 0, "size")]) == (3, 4)
    assert lines[("items", 1, "size")] == 5  # inside a flow mapping
    assert lines[("items", 2)] == 6


def test_a_bad_value_and_a_missing_field_are_named_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text(DOC)
    with pytest.raises(ConfigError) as caught:
        read_yaml(Doc, path)
    reason = caught.value.reason
    assert "items.1.size (line 5): Input should be a valid integer" in reason
    assert "items.2.size (line 6): Field required" in reason  # a missing field: its item's line


def test_broken_yaml_and_a_missing_file_are_config_errors_too(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("items: [\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_yaml(Doc, path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml(Doc, tmp_path / "absent.yaml")
