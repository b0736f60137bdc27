"""The lobe.* check `make lint` runs beside deptry, which sees the `lobe` namespace as one module."""

from __future__ import annotations

from pathlib import Path

from lobe.devtools.first_party_deps import main, module_of, problems


def package(root: Path, name: str, deps: list[str], code: str, extras: str = "") -> Path:
    (root / "src" / "lobe" / "gateway").mkdir(parents=True)
    (root / "src" / "lobe" / "gateway" / "app.py").write_text(code)
    requirements = ", ".join(f'"{d}"' for d in deps)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\ndependencies = [{requirements}]\n{extras}'
    )
    return root


def test_distribution_names_map_to_their_module_in_the_namespace() -> None:
    assert module_of("lobe-chat-worker>=0.1") == "lobe.chat_worker"
    assert module_of("lobe_shared[asyncapi]") == "lobe.shared"
    assert module_of("faststream[nats]>=0.6") is None


def test_an_undeclared_lobe_import_is_named_with_its_line(tmp_path: Path) -> None:
    code = "from lobe.shared import bus\n\nimport lobe.billing.keys\n"
    found = problems(package(tmp_path, "lobe-gateway", ["lobe-shared"], code))
    assert found == [
        f"{tmp_path}/src/lobe/gateway/app.py:3: imports lobe.billing but {tmp_path}/pyproject.toml "
        "does not declare lobe-billing"
    ]


def test_a_declared_lobe_package_never_imported_is_reported(tmp_path: Path) -> None:
    code = "from lobe import shared\n"
    found = problems(package(tmp_path, "lobe-gateway", ["lobe-shared", "lobe-metrics"], code))
    assert found == [f"{tmp_path}/pyproject.toml: declares lobe-metrics but never imports lobe.metrics"]


def test_own_imports_and_extras_count_and_a_clean_package_passes(tmp_path: Path) -> None:
    code = "from lobe.gateway import settings\nfrom lobe.shared.bus import ask\n"
    extras = '[project.optional-dependencies]\nshared = ["lobe-shared"]\n'
    root = package(tmp_path, "lobe-gateway", [], code, extras)
    assert problems(root) == []
    assert main([str(root)]) == 0


def test_the_command_fails_when_a_package_has_a_problem(tmp_path: Path) -> None:
    root = package(tmp_path, "lobe-gateway", ["lobe-shared"], "import lobe.metrics\n")
    assert main([str(root)]) == 1
