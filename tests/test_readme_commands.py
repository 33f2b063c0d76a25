"""The commands whose fresh-clone times are committed (benchmarks/readme_commands.py) are the ones the READMEs
show, word for word, so a README edit that changes a command also has to re-measure it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _commands() -> dict[str, tuple[str, str, list[str]]]:
    spec = importlib.util.spec_from_file_location("readme_commands", REPO / "benchmarks" / "readme_commands.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.COMMANDS


@pytest.mark.parametrize("readme", sorted(_commands()))
def test_timed_commands_are_in_the_readme(readme: str) -> None:
    text = " ".join((REPO / readme).read_text(encoding="utf-8").replace("\\\n", " ").split())
    _, _, commands = _commands()[readme]
    missing = [c for c in commands if " ".join(c.split()) not in text]
    assert not missing, f"{readme} no longer shows {missing}; update benchmarks/readme_commands.py and re-run it"


def test_every_package_readme_is_timed() -> None:
    readmes = {str(p.relative_to(REPO)) for p in REPO.glob("packages/distill-*/README.md")}
    readmes.discard("packages/distill-core/README.md")  # the core has no data of its own to run on
    assert readmes <= set(_commands()), f"untimed READMEs: {sorted(readmes - set(_commands()))}"
