"""Shared fixtures: tiny seeded graphs; one thread (the CI machine is shared and small)."""

from __future__ import annotations

import collections
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

REPO = Path(__file__).resolve().parents[3]
PLANETOID = Path(os.environ.get("DISTILL_PLANETOID_ROOT", "/nonexistent"))  # .ci/run sets it where the data is


@pytest.fixture(scope="session")
def planetoid_root() -> str:
    if not (PLANETOID / "Cora" / "raw").is_dir():
        pytest.skip(f"Planetoid raw files not found under {PLANETOID}; set DISTILL_PLANETOID_ROOT")
    return str(PLANETOID)


@pytest.fixture(scope="session")
def sbm_data():
    from distill_graph.data import make_sbm_graph, real_data_from_graph, validate_graph

    return real_data_from_graph(validate_graph(make_sbm_graph(), name="sbm"), name="sbm")


def write_planetoid_files(folder: Path, prefix: str, *, seed: int = 0, gap: bool = False) -> None:
    """A tiny Planetoid release (4 training, 510 'all', 10 test nodes) pickled as the real files are."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    classes, dims, n_all, n_test = 3, 5, 510, 10

    def onehot(count: int) -> np.ndarray:
        return np.eye(classes, dtype=np.int32)[rng.integers(0, classes, count)]

    def features(count: int) -> sp.csr_matrix:
        return sp.csr_matrix((rng.random((count, dims)) < 0.4).astype(np.float32))

    n = n_all + n_test + (2 if gap else 0)
    test_ids = rng.permutation(np.arange(n_all, n))[:n_test]
    graph = collections.defaultdict(list)
    for _ in range(900):
        a, b = (int(v) for v in rng.integers(0, n, 2))
        graph[a].append(b)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"x": features(4), "tx": features(n_test), "allx": features(n_all), "y": onehot(4), "ty": onehot(n_test),
             "ally": onehot(n_all), "graph": graph}
    for part, value in parts.items():
        (folder / f"ind.{prefix}.{part}").write_bytes(pickle.dumps(value, protocol=2))
    (folder / f"ind.{prefix}.test.index").write_text("\n".join(str(i) for i in test_ids) + "\n")


@pytest.fixture(scope="session")
def write_planetoid():
    """:func:`write_planetoid_files`: a tiny synthetic Planetoid release, pickled as the real files are."""
    return write_planetoid_files
