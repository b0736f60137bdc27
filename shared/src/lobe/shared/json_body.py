"""Request bodies as the suite's HTTP APIs accept them: strict JSON, or a 400 that says why.

Python's json module is lenient where the rest of the path is not: it reads NaN and Infinity, a
lone UTF-16 surrogate (`"\\ud800"`, which no UTF-8 encoder will write again), integers of any
size, and nests until the interpreter's recursion limit. Each of those got past validation and
failed later (the bus encoder, pydantic's serializer, billing's decimals) as a 5xx. Here they
are refused at the edge, naming where in the body they are (`param`, as OpenAI does).
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

from lobe.shared.openai_errors import ApiError

# Deeper than any real request (a JSON Schema of tool parameters nests a dozen levels); shallow
# enough that every encoder and validator on the way handles it without recursing to its limit.
MAX_DEPTH = 64
# Integers a 64-bit consumer (providers, PostgreSQL's bigint) can hold.
INT_LIMIT = 2**63 - 1


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON as these APIs read it: `application/json`, with no
    charset or UTF-8's (RFC 8259: JSON between systems is UTF-8; another would be misread)."""
    if not content_type:
        return False
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    if media != "application/json":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or ApiError(400)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse(f"The request body is not valid UTF-8 (byte {exc.start}).", "invalid_json")
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        _refuse(f"The request body nests deeper than {MAX_DEPTH} levels.", "invalid_json")
    except ValueError as exc:  # malformed JSON, NaN or Infinity, an integer too long to read
        _refuse(f"We could not parse the JSON body of your request: {exc}", "invalid_json")
    if not isinstance(data, dict):
        _refuse("The request body must be a JSON object.", "invalid_json")
    check_values(data)
    return data


def check_values(data: Any) -> None:
    """Depth, Unicode, integer range and finiteness of every value (iterative: no recursion limit)."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            _refuse(f"The request body nests deeper than {MAX_DEPTH} levels.", "invalid_json", path)
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, str(i))) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int) and abs(value) > INT_LIMIT:
            _refuse("Integers must fit in 64 bits.", "invalid_value", path)
        elif isinstance(value, float) and not math.isfinite(value):
            _refuse("Numbers must be finite.", "invalid_value", path)


def _check_text(text: str, path: tuple[str, ...]) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        _refuse(
            "Strings must be valid Unicode (this one holds a lone UTF-16 surrogate).", "invalid_unicode", path
        )


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _refuse(message: str, code: str, path: tuple[str, ...] = ()) -> NoReturn:
    raise ApiError(400, message, code, param=".".join(path) or None)
