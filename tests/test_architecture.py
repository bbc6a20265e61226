"""The shape of the core (ARCHITECTURE.md): packages import one way, no cycles, small modules.

The allowed imports below are the single source of the direction; ARCHITECTURE.md draws the same
table and a test keeps the two equal.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "ci" / "delivery"

# package -> the packages it may import (besides itself). ``cli`` is delivery/cli.py, the entry point.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "config": {"core"},
    "oci": {"core"},
    "schemas": {"core", "config"},
    "release": {"core", "config"},
    "substrate": {"core", "config"},
    "modelcar": {"core", "config", "oci", "release"},
    "gitops": {"core", "config", "modelcar", "release"},
    "validation": {"core", "config", "gitops", "schemas", "substrate"},
    "promotion": {"core", "config", "oci", "release", "gitops", "schemas", "validation"},
    "demo": {"core", "config", "oci", "release", "modelcar", "gitops", "schemas", "validation", "promotion"},
    "fork": {"core", "config", "gitops", "schemas", "substrate", "validation"},
    "cli": {"core"},
}
# Step packages: each has a cli.py with its commands; library packages (core, oci, release) have none.
STEP_PACKAGES = {
    "config",
    "schemas",
    "substrate",
    "modelcar",
    "gitops",
    "validation",
    "promotion",
    "demo",
    "fork",
}
MAX_LINES = 600


def _package(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or (parts[1] in {"cli", "__init__"} and len(parts) == 2):
        return "cli"
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(CORE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("delivery"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("delivery"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    found.discard("delivery")  # ``from delivery import config``: the target is delivery.config
    return found


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(CORE.rglob("*.py")) if p.name != "__main__.py"}


def _lazy_targets() -> set[str]:
    """Packages the entry point loads by name (LazyGroup strings), which must stay real."""
    text = (CORE / "cli.py").read_text()
    return set(re.findall(r'"(delivery\.[\w.]+):\w+"', text))


def test_imports_point_one_way() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        mine = _package(name)
        assert mine in ALLOWED, f"{name}: package {mine!r} is missing from ALLOWED (and ARCHITECTURE.md)"
        for target in _imports(path, top_level_only=False):
            theirs = _package(target)
            if (theirs != mine and theirs not in ALLOWED[mine] and target in modules) or (
                theirs != mine and theirs not in ALLOWED[mine] and target.rsplit(".", 1)[0] in modules
            ):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_entry_point_names_real_commands() -> None:
    modules = _modules()
    for target in _lazy_targets():
        assert target in modules, f"delivery/cli.py lists {target}, which does not exist"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in _imports(path, top_level_only=True):
            if target in modules:
                targets.add(target)
            elif target.rsplit(".", 1)[0] in modules:
                targets.add(target.rsplit(".", 1)[0])
        graph[name] = targets - {name}
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_no_module_is_too_long(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines (split it by job)"


def test_every_step_package_has_the_same_face() -> None:
    for package in sorted(STEP_PACKAGES | {"core", "oci", "release"}):
        init = CORE / package / "__init__.py"
        assert init.is_file(), f"{package} is not a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{package}/__init__.py has no docstring"
    for package in sorted(STEP_PACKAGES):
        assert (CORE / package / "cli.py").is_file(), f"{package} has no cli.py"
        assert not (CORE / package / "commands.py").exists()
    flat = sorted(p.name for p in CORE.glob("*.py"))
    assert flat == ["__init__.py", "__main__.py", "cli.py"], f"modules outside a package: {flat}"


def test_architecture_doc_draws_the_same_table() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", text, re.M))
    drawn = {pkg: {p.strip(" `") for p in deps.split(",") if p.strip(" `-—")} for pkg, deps in rows.items()}
    assert drawn == ALLOWED
