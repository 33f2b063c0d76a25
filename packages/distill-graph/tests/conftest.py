"""Shared fixtures: tiny seeded graphs; one thread (the CI machine is shared and small)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

REPO = Path(__file__).resolve().parents[3]
PLANETOID = Path(os.environ.get("DISTILL_PLANETOID_ROOT", REPO.parent / "shared/data/planetoid"))


@pytest.fixture(scope="session")
def planetoid_root() -> str:
    if not (PLANETOID / "Cora" / "raw").is_dir():
        pytest.skip(f"Planetoid raw files not found under {PLANETOID}; set DISTILL_PLANETOID_ROOT")
    return str(PLANETOID)


@pytest.fixture(scope="session")
def sbm_data():
    from distill_graph.data import make_sbm_graph, real_data_from_graph, validate_graph

    return real_data_from_graph(validate_graph(make_sbm_graph(), name="sbm"), name="sbm")
