"""`python -m lobe.devtools.first_party_deps DIR...`: each package imports exactly the lobe.* packages
its pyproject.toml declares (run by `make lint`, after deptry).

deptry checks the third-party imports, but `lobe` is a PEP 420 namespace every package shares: it
sees one top-level module `lobe` that any lobe-* dependency satisfies, so a gateway importing
lobe.billing, or a package declaring a lobe-* it no longer uses, would pass. This reads the
dotted names instead.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

NAMESPACE = "lobe"


def module_of(requirement: str) -> str | None:
    """`lobe-chat-worker>=1` -> `lobe.chat_worker`; None outside the namespace."""
    name = re.split(r"[\[<>=!~;@ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
    if not name.startswith(f"{NAMESPACE}-"):
        return None
    return f"{NAMESPACE}.{name.removeprefix(f'{NAMESPACE}-').replace('-', '_')}"


def imported_packages(src: Path) -> dict[str, list[str]]:
    """Each lobe.* package imported by a module under `src`, with where (`file:line`)."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from lobe import shared` imports lobe.shared.
                bare = node.module == NAMESPACE
                names = [f"{NAMESPACE}.{a.name}" for a in node.names] if bare else [node.module]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == NAMESPACE and len(parts) > 1:
                    found[f"{NAMESPACE}.{parts[1]}"].append(f"{path}:{node.lineno}")
    return found


def problems(package_dir: Path) -> list[str]:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    requirements = project.get("dependencies", []) + [
        r for extra in project.get("optional-dependencies", {}).values() for r in extra
    ]
    declared = {m for m in map(module_of, requirements) if m}
    imported = imported_packages(package_dir / "src")
    imported.pop(module_of(project["name"]) or "", None)
    found = [
        f"{where}: imports {module} but {package_dir}/pyproject.toml does not declare {_dist(module)}"
        for module in sorted(imported.keys() - declared)
        for where in imported[module]
    ]
    found += [
        f"{package_dir}/pyproject.toml: declares {_dist(module)} but never imports {module}"
        for module in sorted(declared - imported.keys())
    ]
    return found


def _dist(module: str) -> str:
    return module.replace(".", "-").replace("_", "-")


def main(argv: list[str]) -> int:
    found = [problem for package_dir in argv for problem in problems(Path(package_dir))]
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
