"""The shape of the code: where vLLM may be imported, which packages depend on which,
and how large a module may grow (a newcomer should find a concern by folder name)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "wrappers", "models")
MAX_MODULE_LINES = 400


def _modules(package: str) -> Iterator[Path]:
    yield from sorted((REPO / package).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imported(path)}


@pytest.mark.parametrize("package", PACKAGES)
def test_only_server_vllm_imports_vllm(package: str) -> None:
    vllm_home = REPO / "server" / "vllm"
    offenders = [
        str(path.relative_to(REPO))
        for path in _modules(package)
        if "vllm" in _roots(path) and vllm_home not in path.parents
    ]
    assert offenders == []


@pytest.mark.parametrize("package", ["wrappers", "models"])
def test_wrappers_and_models_never_import_server(package: str) -> None:
    offenders = [str(path.relative_to(REPO)) for path in _modules(package) if "server" in _roots(path)]
    assert offenders == []


@pytest.mark.parametrize("package", ["wrappers", "models"])
def test_wrappers_and_models_never_import_fastapi(package: str) -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in _modules(package)
        if _roots(path) & {"fastapi", "starlette", "uvicorn"}
    ]
    assert offenders == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_too_long(package: str) -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in _modules(package)
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_every_folder_is_a_package_with_few_modules() -> None:
    for folder in [REPO / package for package in PACKAGES] + [
        path for package in PACKAGES for path in (REPO / package).rglob("*") if path.is_dir()
    ]:
        if folder.name == "__pycache__" or not any(folder.glob("*.py")):
            continue
        assert (folder / "__init__.py").exists(), folder
        assert len(list(folder.glob("*.py"))) <= 12, folder


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (lazy imports included; package
    ``__init__`` re-exports left out, since they import their own children by design)."""
    paths = {_module_name(path): path for package in PACKAGES for path in _modules(package)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        if path.name == "__init__.py":
            continue
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets.add(node.module)
                targets.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {target for target in targets if target in paths and target != name}
        graph[name] = {target for target in graph[name] if paths[target].name != "__init__.py"}
    return graph


def test_no_import_cycles() -> None:
    graph = _import_graph()
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycles.append([*trail[trail.index(name) :], name])
            return
        if name in done:
            return
        for target in sorted(graph.get(name, ())):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []
