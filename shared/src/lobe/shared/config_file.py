"""The operator's YAML files (routing, prices, plans): one way to read, validate and report a bad one."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """An operator-edited YAML file is missing or invalid: the service refuses to start."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def exact_decimal(value: Any) -> Any:
    # YAML parses 0.0015 as a float; its repr is the shortest exact spelling of what was written.
    return Decimal(repr(value)) if isinstance(value, float) else value


def describe(exc: ValidationError, root: str = "<root>") -> str:
    """Every error as `dotted.field: message`, so an operator finds the line to fix."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or root}: {e['msg']}" for e in exc.errors())


def load_yaml(model: type[M], path: Path | str | None, env_var: str, default: Path) -> M:
    """Load `path`, else $`env_var`, else the bundled `default`; a bad file raises ConfigError."""
    path = Path(path or os.environ.get(env_var) or default)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(str(path), describe(exc)) from exc
