"""One way to start the suite in tests (issue 18, item 4): every test tree starts services through
lobe.devtools.suite, which launches them from `lobe dev`'s service specs; no test module runs
`python -m lobe.<service>` itself, and no fixture for a service or an upstream is defined twice
(a test file that needs other settings gives its fixture a name of its own, built on the suite)."""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from pathlib import Path

from lobe.devtools.dev import SERVICES

ROOT = Path(__file__).resolve().parents[2]
TEST_TREES = (
    "tests",
    "shared/tests",
    "devtools/tests",
    *(f"services/{s}" for s in ("gateway", "chat-worker", "billing", "metrics")),
)
# Modules whose fixtures every tree sees: the harness, the suite's, the services' own.
PLUGINS = (
    "conftest.py",
    "devtools/src/lobe/devtools/pytest_plugin.py",
    "devtools/src/lobe/devtools/suite/fixtures.py",
    "services/billing/src/lobe/billing/testing.py",
)
SERVICE_MODULES = {service.module for service in SERVICES}
ROLES = ("gateway", "worker", "billing", "metrics", "upstream")


def modules_of_tests() -> list[Path]:
    found = [p for tree in TEST_TREES for p in (ROOT / tree).rglob("*.py") if "/src/" not in str(p)]
    return sorted(found)


def python_m_service(tree: ast.AST) -> list[int]:
    """Lines where a literal "-m" is followed by a service's module: an argv that starts it."""
    lines = []
    for node in ast.walk(tree):
        items = (
            node.elts
            if isinstance(node, ast.List | ast.Tuple)
            else node.args
            if isinstance(node, ast.Call)
            else []
        )
        for first, second in itertools.pairwise(items):
            if _text(first) == "-m" and _text(second) in SERVICE_MODULES:
                lines.append(node.lineno)
    return lines


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def fixtures(tree: ast.AST) -> list[str]:
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
    ]


def test_the_finder_sees_an_argv_that_starts_a_service_and_a_fixture() -> None:
    tree = ast.parse('@pytest.fixture\ndef gateway(): run([sys.executable, "-m", "lobe.gateway"])')
    assert python_m_service(tree) == [2]
    assert fixtures(tree) == ["gateway"]
    assert python_m_service(ast.parse('cmd = ["python", "-m", "lobe.billing.migrations"]')) == []


def test_no_test_module_starts_a_service_with_python_m() -> None:
    starts = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules_of_tests()
        for line in python_m_service(ast.parse(path.read_text(), str(path)))
    ]
    assert starts == [], f"start services with lobe.devtools.suite, not python -m: {starts}"


def test_each_service_and_upstream_fixture_is_defined_once() -> None:
    defined: dict[str, list[str]] = defaultdict(list)
    for path in [*modules_of_tests(), *(ROOT / p for p in PLUGINS)]:
        for name in fixtures(ast.parse(path.read_text(), str(path))):
            if any(role in name for role in ROLES):
                defined[name].append(str(path.relative_to(ROOT)))
    twice = {name: where for name, where in defined.items() if len(where) > 1}
    assert twice == {}, f"define each once (lobe.devtools.suite.fixtures or a conftest): {twice}"
    assert {"worker", "chat_worker", "upstream", "make_upstream"} <= defined.keys()
