"""Sparse and dense graph operators against independent references (torch_geometric's gcn_norm, dense algebra)."""

from __future__ import annotations

import torch
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_undirected

from distill_graph.graph import Propagation, csr_rows, dense_gcn_norm, sparse_gcn_norm, to_sparse_x
from distill_graph.methods._base import RealGraph
from distill_graph.models import GCN


def _random_graph(n: int = 30, e: int = 60, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, n, (2, e), generator=g)
    edges = edges[:, edges[0] != edges[1]]
    return to_undirected(edges, num_nodes=n)


def test_sparse_gcn_norm_matches_pyg() -> None:
    edges = _random_graph()
    ours = sparse_gcn_norm(edges, 30).to_dense()
    index, weight = gcn_norm(edges, num_nodes=30, add_self_loops=True)
    ref = torch.zeros(30, 30)
    ref[index[1], index[0]] = weight  # PyG's messages flow source -> target
    assert torch.allclose(ours, ref, atol=1e-6)


def test_dense_norm_equals_sparse_norm() -> None:
    edges = _random_graph()
    dense = torch.zeros(30, 30)
    dense[edges[0], edges[1]] = 1.0
    assert torch.allclose(dense_gcn_norm(dense), sparse_gcn_norm(edges, 30).to_dense(), atol=1e-6)


def test_csr_rows_equals_dense_indexing() -> None:
    x = torch.rand(50, 40, generator=torch.Generator().manual_seed(0))
    x[x < 0.95] = 0
    rows = torch.tensor([3, 3, 0, 49, 17])
    sparse = to_sparse_x(x)
    assert sparse.layout == torch.sparse_csr
    assert torch.equal(csr_rows(sparse, rows).to_dense(), x[rows])


def test_models_agree_on_sparse_and_dense_graph() -> None:
    from distill_graph.models import MODEL_NAMES, build_graph_model

    edges = _random_graph()
    dense = torch.zeros(30, 30)
    dense[edges[0], edges[1]] = 1.0
    x = torch.randn(30, 8)
    for name in MODEL_NAMES:
        torch.manual_seed(0)
        model = build_graph_model(name, in_dim=8, num_classes=3, hidden=16, dropout=0.0).eval()
        a = model(x, Propagation.from_edges(edges, 30))
        b = model(x, Propagation.from_dense(dense))
        assert a.shape == (30, 3)
        assert torch.allclose(a, b, atol=1e-5), name


def test_khop_batch_logits_equal_full_graph_logits(sbm_data) -> None:
    """The exact sparse class batches give the same logits as the whole graph (no sampling error)."""
    real = RealGraph(sbm_data, inductive=False)
    graph = sbm_data.extra["graph"]
    torch.manual_seed(0)
    model = GCN(in_dim=graph.x.shape[1], num_classes=4, hidden=16, nlayers=2, dropout=0.0)
    full = model(graph.x, Propagation.from_edges(graph.edge_index, graph.num_nodes))
    idx = torch.tensor([0, 5, 7, 30, 61])
    batch = real.logits(model, idx, hops=2)
    assert torch.allclose(batch, full[real.train_nodes[idx]], atol=1e-5)
