"""Normalised adjacency operators: sparse for the real graph, dense (and differentiable) for the synthetic one.

Every model multiplies node states with a :class:`Propagation`: ``gcn(h) = D^-1/2 (A + I) D^-1/2 h`` (Kipf & Welling,
ICLR 2017, https://arxiv.org/abs/1609.02907) and ``mean(h)`` (row-normalised neighbours, no self loop, for
GraphSAGE). The real graph is held as a ``torch.sparse_csr_tensor`` built from ``edge_index`` and is never densified;
only the small synthetic graph is a dense ``(n, n)`` matrix, so that gradients flow into its entries.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.utils import k_hop_subgraph

# torch flags every CSR tensor as beta; the operations used here (construction, sparse @ dense) are stable
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = [
    "Propagation",
    "csr_rows",
    "dense_gcn_norm",
    "dense_mean_norm",
    "khop_batch",
    "matmul",
    "sparse_gcn_norm",
    "sparse_mean_norm",
    "sub_propagation",
    "to_sparse_x",
]


def _csr(row: Tensor, col: Tensor, value: Tensor, n_rows: int, n_cols: int) -> Tensor:
    coo = torch.sparse_coo_tensor(torch.stack([row, col]), value, (n_rows, n_cols), check_invariants=False)
    return coo.coalesce().to_sparse_csr()


def sparse_gcn_norm(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a sparse CSR matrix ``(N, N)``; ``edge_index`` must not hold self loops.

    Shapes:
        edge_index: ``(2, E)``; edge_weight: ``(E,)``; returns a sparse ``(N, N)`` tensor with ``E + N`` entries.
    """
    device = edge_index.device
    weight = edge_weight if edge_weight is not None else torch.ones(edge_index.shape[1], device=device)
    loops = torch.arange(num_nodes, device=device)
    row = torch.cat([edge_index[0], loops])
    col = torch.cat([edge_index[1], loops])
    value = torch.cat([weight.float(), torch.ones(num_nodes, device=device)])
    deg = torch.zeros(num_nodes, device=device).index_add_(0, row, value)
    inv_sqrt = deg.pow(-0.5)
    return _csr(row, col, inv_sqrt[row] * value * inv_sqrt[col], num_nodes, num_nodes)


def sparse_mean_norm(edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> Tensor:
    """Row-normalised adjacency ``D^-1 A`` (mean over neighbours; isolated nodes get a zero row), sparse CSR."""
    device = edge_index.device
    weight = edge_weight.float() if edge_weight is not None else torch.ones(edge_index.shape[1], device=device)
    deg = torch.zeros(num_nodes, device=device).index_add_(0, edge_index[0], weight).clamp_min(1e-12)
    return _csr(edge_index[0], edge_index[1], weight / deg[edge_index[0]], num_nodes, num_nodes)


def dense_gcn_norm(adj: Tensor) -> Tensor:
    """``D^-1/2 (A + I) D^-1/2`` of a small dense (synthetic) adjacency, differentiable in ``adj``.

    Shapes:
        adj: ``(n, n)`` non-negative weights with a zero diagonal; returns ``(n, n)``.
    """
    a = adj + torch.eye(len(adj), device=adj.device, dtype=adj.dtype)
    inv_sqrt = a.sum(1).pow(-0.5)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def dense_mean_norm(adj: Tensor) -> Tensor:
    """Row-normalised ``D^-1 A`` of a small dense adjacency (zero rows stay zero)."""
    return adj / adj.sum(1, keepdim=True).clamp_min(1e-12)


def to_sparse_x(x: Tensor, *, max_density: float = 0.1) -> Tensor:
    """Node features as a sparse CSR matrix when at most ``max_density`` of them are non-zero (bag-of-words
    features of citation graphs are ~1% dense), else unchanged; ``x @ W`` then costs ``nnz`` instead of ``N d``."""
    if x.layout != torch.strided or x.dim() != 2 or x.numel() == 0:
        return x
    if float((x != 0).float().mean()) <= max_density:
        return x.to_sparse_csr()
    return x


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for a dense or sparse (CSR/COO) ``a`` and a dense ``b``."""
    if a.layout == torch.strided:
        return a @ b
    return torch.sparse.mm(a, b)


@dataclass
class Propagation:
    """The normalised adjacency operators a graph model uses on one graph.

    Args:
        gcn_adj: ``D^-1/2 (A + I) D^-1/2`` (sparse for a real graph, dense for a synthetic one).
        mean_adj: ``D^-1 A`` (built lazily by :meth:`mean` from ``edge_index`` when a sparse graph is given).
        edge_index: the raw edges (sparse graphs only), used to build ``mean_adj`` on first use.
        num_nodes: number of nodes.
    """

    gcn_adj: Tensor
    mean_adj: Tensor | None = None
    edge_index: Tensor | None = None
    edge_weight: Tensor | None = None
    num_nodes: int = 0

    @classmethod
    def from_edges(cls, edge_index: Tensor, num_nodes: int, edge_weight: Tensor | None = None) -> Propagation:
        """Sparse operators of a real graph (``edge_index`` symmetric, without self loops)."""
        return cls(sparse_gcn_norm(edge_index, num_nodes, edge_weight), None, edge_index, edge_weight, num_nodes)

    @classmethod
    def from_dense(cls, adj: Tensor) -> Propagation:
        """Dense operators of a small synthetic graph (differentiable in ``adj``)."""
        return cls(dense_gcn_norm(adj), dense_mean_norm(adj), None, None, len(adj))

    @property
    def is_sparse(self) -> bool:
        return self.gcn_adj.layout != torch.strided

    def gcn(self, h: Tensor) -> Tensor:
        return matmul(self.gcn_adj, h)

    def mean(self, h: Tensor) -> Tensor:
        if self.mean_adj is None:
            assert self.edge_index is not None
            self.mean_adj = sparse_mean_norm(self.edge_index, self.num_nodes, self.edge_weight)
        return matmul(self.mean_adj, h)

    def propagate_k(self, x: Tensor, k: int) -> Tensor:
        """``(D^-1/2 (A + I) D^-1/2)^k x`` (SGC's fixed feature smoothing), dense result."""
        h = x
        for _ in range(k):
            h = self.gcn(h)
        return h.to_dense() if h.layout != torch.strided else h


def khop_batch(edge_index: Tensor, num_nodes: int, batch: Tensor, hops: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``hops``-hop neighbourhood of ``batch`` with its induced edges, relabelled.

    A ``hops``-layer message-passing model evaluated on this subgraph gives exactly the full-graph outputs at the
    batch nodes as long as the normalisation uses full-graph degrees (see :func:`sub_propagation`).

    Returns:
        ``(subset, sub_edge_index, mapping)``: the original ids of the subgraph nodes, its edges in local ids, and
        the local ids of ``batch``.
    """
    subset, sub_edges, mapping, _ = k_hop_subgraph(batch, hops, edge_index, relabel_nodes=True,
                                                   num_nodes=num_nodes)
    return subset, sub_edges, mapping


def sub_propagation(subset: Tensor, sub_edge_index: Tensor, degree_gcn: Tensor) -> Propagation:
    """GCN operator of an induced subgraph that keeps the full graph's normalisation ``deg^-1/2`` (``degree_gcn`` is
    the full graph's ``deg(A + I)`` per node), so boundary nodes do not change the values at the batch."""
    n = len(subset)
    loops = torch.arange(n, device=subset.device)
    row = torch.cat([sub_edge_index[0], loops])
    col = torch.cat([sub_edge_index[1], loops])
    inv_sqrt = degree_gcn[subset].pow(-0.5)
    value = inv_sqrt[row] * inv_sqrt[col]
    return Propagation(_csr(row, col, value, n, n), num_nodes=n)


def csr_rows(x: Tensor, rows: Tensor) -> Tensor:
    """Rows ``rows`` of a CSR matrix (or of a dense one), as the same layout; vectorised gather of the row slices
    (``index_select`` has no CSR kernel on CPU).

    Shapes:
        x: ``(N, d)``; rows: ``(m,)``; returns ``(m, d)``.
    """
    if x.layout == torch.strided:
        return x[rows]
    crow, col, val = x.crow_indices(), x.col_indices(), x.values()
    starts, ends = crow[rows], crow[rows + 1]
    counts = ends - starts
    new_crow = torch.zeros(len(rows) + 1, dtype=crow.dtype, device=crow.device)
    new_crow[1:] = torch.cumsum(counts, 0)
    total = int(new_crow[-1])
    offsets = torch.repeat_interleave(starts - new_crow[:-1], counts, output_size=total)
    gather = offsets + torch.arange(total, device=crow.device)
    return torch.sparse_csr_tensor(new_crow, col[gather], val[gather], (len(rows), x.shape[1]), check_invariants=False)
