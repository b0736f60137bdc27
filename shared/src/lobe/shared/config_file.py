"""The operator's YAML files (routing, prices, plans): one way to read, validate and report a bad one."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Loc = tuple[int | str, ...]


class ConfigError(Exception):
    """An operator-edited YAML file is missing or invalid: the service refuses to start (or, on a
    reload, keeps what it had)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def exact_decimal(value: Any) -> Any:
    # YAML parses 0.0015 as a float; its repr is the shortest exact spelling of what was written.
    return Decimal(repr(value)) if isinstance(value, float) else value


def yaml_lines(text: str) -> dict[Loc, int]:
    """The 1-based line of every key and list item of a YAML document, by its path (`("models", 0,
    "name")`), so an error about a field can point at the line to fix."""
    lines: dict[Loc, int] = {}

    def walk(node: yaml.Node, path: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                where = (*path, key.value)
                lines[where] = key.start_mark.line + 1
                walk(value, where)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                walk(item, (*path, index))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    # A missing field has no line of its own: the closest enclosing one is where it belongs.
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def describe(exc: ValidationError, root: str = "<root>", lines: dict[Loc, int] | None = None) -> str:
    """Every error as `dotted.field: message` (with `(line N)` when the file's lines are known),
    so an operator finds the line to fix."""
    parts = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        where = ".".join(map(str, loc)) or root
        line = _line_of(loc, lines) if lines else None
        parts.append(f"{where}{f' (line {line})' if line else ''}: {error['msg']}")
    return "; ".join(parts)


def read_yaml(model: type[M], path: Path | str, validate: Callable[[Any], M] | None = None) -> M:
    """Read and validate one YAML file (`validate` defaults to the model's own); a bad file raises
    ConfigError naming each bad field and its line."""
    try:
        text = Path(path).read_text()
        raw = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:  # a YAML error names its own line and column
        raise ConfigError(str(path), f"cannot read: {exc}") from exc
    try:
        return (validate or model.model_validate)(raw)
    except ValidationError as exc:
        raise ConfigError(str(path), describe(exc, lines=yaml_lines(text))) from exc


def load_yaml(model: type[M], path: Path | str | None, env_var: str, default: Path) -> M:
    """Load `path`, else $`env_var`, else the bundled `default`; a bad file raises ConfigError."""
    return read_yaml(model, Path(path or os.environ.get(env_var) or default))
