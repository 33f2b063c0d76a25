"""Every method a package registers (its ``distill.methods`` entry points) is under a contract test of that package:
a test class deriving from ``MethodContract`` or ``ArtifactContract`` (distill_core.testing), directly or through
another class of the same file, that sets ``method`` to the registered name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGES = sorted((Path(__file__).resolve().parents[1] / "packages").glob("distill-*"))


def registered(package: Path) -> list[str]:
    """The names in the ``[project.entry-points."distill.methods"]`` table of the package's pyproject.toml (read
    as text: tomllib needs Python 3.11)."""
    text = (package / "pyproject.toml").read_text(encoding="utf-8")
    table = re.search(r'^\[project\.entry-points\."distill\.methods"\]\n(.*?)(?=^\[|\Z)', text, re.M | re.S)
    return sorted(re.findall(r'^"?([\w-]+)"?\s*=', table.group(1), re.M)) if table else []


def _is_contract(node: ast.ClassDef, classes: dict[str, ast.ClassDef], seen: frozenset[str] = frozenset()) -> bool:
    """Whether ``node`` derives from an imported ``*Contract`` class, directly or through classes of its file."""
    for base in node.bases:
        name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
        if name.endswith("Contract") and name not in classes:
            return True  # imported: MethodContract, ArtifactContract, DigitsContract, ...
        if name in classes and name not in seen and _is_contract(classes[name], classes, seen | {node.name}):
            return True
    return False


def contract_methods(tests: Path) -> set[str]:
    """The ``method`` names of the contract classes in the test files below ``tests``."""
    found: set[str] = set()
    for file in tests.rglob("*.py"):
        classes = {node.name: node for node in ast.walk(ast.parse(file.read_text(encoding="utf-8")))
                   if isinstance(node, ast.ClassDef)}

        for node in classes.values():
            for stmt in node.body:
                target = stmt.target if isinstance(stmt, ast.AnnAssign) else (
                    stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else None)
                value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
                if (isinstance(target, ast.Name) and target.id == "method" and isinstance(value, ast.Constant)
                        and isinstance(value.value, str) and _is_contract(node, classes)):
                    found.add(value.value)
    return found


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_every_registered_method_has_a_contract_test(package: Path) -> None:
    names = registered(package)
    missing = sorted(set(names) - contract_methods(package / "tests"))
    assert not missing, f"{package.name} registers {missing} without a contract test in {package.name}/tests"


def test_the_check_sees_contracts() -> None:  # the scan itself must find something, or the test above is vacuous
    core = next(p for p in PACKAGES if p.name == "distill-core")
    assert {"random", "herding", "kcenter"} <= contract_methods(core / "tests")
    assert registered(core) == ["herding", "kcenter", "random"]
