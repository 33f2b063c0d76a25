"""Shared fixtures: an isolated embedding cache, the tiny toy dataset, the default encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_text.testing import write_toy_dataset


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    mp.setenv("DISTILL_TEXT_CACHE", str(tmp_path_factory.mktemp("text-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train.jsonl`` (30 per class) and ``test.jsonl`` (20 per class) of the two-class toy set."""
    folder = tmp_path_factory.mktemp("tiny")
    write_toy_dataset(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_spec(tiny_dir: Path) -> str:
    return f"jsonl:{tiny_dir / 'train.jsonl'}?L=16"


@pytest.fixture(scope="session")
def spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The contract tests' toy set (seed 10, L = 16), written once per session into pytest's temporary folder."""
    return f"jsonl:{write_toy_dataset(tmp_path_factory.mktemp('contract'), seed=10)}?L=16"


@pytest.fixture(autouse=True)
def _contract_dataset(request: pytest.FixtureRequest, spec: str) -> None:
    """The MethodContract classes read ``dataset`` from the class; point it at the ``spec`` file."""
    from distill_core.testing import MethodContract

    if request.cls is not None and issubclass(request.cls, MethodContract):
        request.cls.dataset = spec


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    from distill_text import load_encoder

    return load_encoder()
