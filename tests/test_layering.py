"""The packages' internal import graphs are one-way: no module of a package reaches itself through its own
relative imports, counting those made under ``TYPE_CHECKING`` and inside functions (the layering the core's
modality interface relies on: it knows summaries, data and protocols, never artifacts or methods)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGES = sorted((Path(__file__).resolve().parents[1] / "packages").glob("distill-*/src/distill_*"))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module name (dotted, relative to ``root``) -> the package modules it imports with relative imports."""
    graph: dict[str, set[str]] = {}
    for file in root.rglob("*.py"):
        parts = list(file.relative_to(root).with_suffix("").parts)
        package = parts[:-1]  # the package a module (or an __init__) sits in
        name = ".".join(parts)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                deps.add(target)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle among modules (``__init__`` files, which only re-export, are left out), or ``None``."""
    nodes = {n for n in graph if not n.endswith("__init__")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            dep = dep if dep in nodes else f"{dep}.__init__" if f"{dep}.__init__" in graph else dep
            if dep not in nodes:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(nodes):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "__init__": {"a"}}) is None


def test_import_graph_reads_relative_imports(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import X\n")
    (tmp_path / "b.py").write_text("def f():\n    from .sub.c import Y\n")
    (tmp_path / "sub" / "c.py").write_text("from ..a import Z\nimport os\n")
    graph = import_graph(tmp_path)
    assert graph["a"] == {"b"} and graph["b"] == {"sub.c"} and graph["sub.c"] == {"a"}
    assert find_cycle(graph) == ["a", "b", "sub.c", "a"]


@pytest.mark.parametrize("root", PACKAGES, ids=lambda p: p.name)
def test_no_import_cycle(root: Path) -> None:
    cycle = find_cycle(import_graph(root))
    assert cycle is None, f"{root.name} modules import each other in a circle: {' -> '.join(cycle or [])}"
