"""The gateway's modules import one another without a cycle: each has one role, and a cycle
means two of them share one (as the answer and the resources once did). Imports under
TYPE_CHECKING count too: they are the same dependency, hidden from the interpreter."""

from __future__ import annotations

import ast
from pathlib import Path

import lobe.gateway

PACKAGE = "lobe.gateway"
ROOT = Path(lobe.gateway.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from lobe.gateway.auth import routes` names a module, `from x import NAME` does not.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found.update(name for name in names if name in modules)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once, as the path that closes it (depth first)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_the_graph_sees_the_gateways_imports() -> None:
    graph = import_graph()
    assert "lobe.gateway.accounting" in graph["lobe.gateway.chat"]
    assert "lobe.gateway.answer" in graph["lobe.gateway.accounting"]


def test_no_import_cycle_between_gateway_modules() -> None:
    assert cycles(import_graph()) == []
