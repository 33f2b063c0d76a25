"""The real graph stays sparse: one outer step on a 100,000-node graph (a dense N x N float matrix would need
40 GB) finishes in seconds; coreset baselines and evaluation operate sparsely too."""

from __future__ import annotations

import time

import torch
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from distill_core import Budget
from distill_core.distiller import Distiller
from distill_core.registry import get_modality
from distill_core.runner import build_method
from distill_graph.data import real_data_from_graph, validate_graph


def _large_graph(n: int = 100_000, e: int = 300_000, classes: int = 4, dim: int = 16) -> Data:
    g = torch.Generator().manual_seed(0)
    edges = torch.randint(0, n, (2, e), generator=g)
    edges = to_undirected(edges[:, edges[0] != edges[1]], num_nodes=n)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, dim, generator=g) + y[:, None].float()
    split = torch.rand(n, generator=g)
    return Data(x=x, y=y, edge_index=edges, train_mask=split < 0.01, val_mask=(split >= 0.01) & (split < 0.02),
                test_mask=split >= 0.5)


def test_one_outer_step_on_a_large_graph_is_fast_and_sparse() -> None:
    data = real_data_from_graph(validate_graph(_large_graph(), name="large"), name="large")
    modality = get_modality("graph")
    for name, overrides in (("gcond", {"outer": 1, "inner": 1}), ("doscond", {}), ("gcdm", {"outer": 1})):
        method = build_method(name, {"steps": 1, **overrides})
        summary = method.init_summary(data, budget=Budget(ipc=5), modality=modality,
                                      generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        Distiller(method=method, data=data, summary=summary, modality=modality, progress=False).run()
        assert time.perf_counter() - start < 20, name
