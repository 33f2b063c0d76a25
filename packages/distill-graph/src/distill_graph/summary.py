"""The condensed graph: learnable node features, hard labels and a synthetic structure.

The structure is one of

- ``"pge"``: generated from the features by GCond's structure generator (Jin et al., ICLR 2022,
  https://arxiv.org/abs/2110.07580), ``A'_ij = sigmoid((z_ij + z_ji) / 2)`` with ``z_ij = MLP([x'_i; x'_j])`` and a
  zero diagonal; the MLP's parameters are part of the summary while it learns;
- ``"identity"``: no edges (GCond-X; with the self loops of GCN normalisation the operator is the identity);
- ``"fixed"``: a given sparse adjacency (coreset baselines' induced subgraphs, and every summary loaded from an
  artifact).

Artifacts store the adjacency that evaluation uses (entries of the generated matrix at or above ``threshold``) as
index/value pieces ``adj_index (2, E)`` and ``adj_value (E,)``, so a loaded summary trains models exactly as the
live one did.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.errors import ArtifactError, DataValidationError
from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary, register_summary_type

__all__ = ["GraphSummary", "StructureGenerator", "StructureKind", "bernoulli_graph"]

StructureKind = Literal["pge", "identity", "fixed"]


def bernoulli_graph(prob: Tensor, generator: torch.Generator) -> Tensor:
    """One draw of the symmetric random graph with edge probabilities ``prob`` ``(n, n)``: each unordered pair
    ``i < j`` is an edge with probability ``prob[i, j]``, mirrored; zero diagonal. Returns 0/1 ``(n, n)``."""
    n = len(prob)
    u = torch.rand(n, n, generator=generator).to(prob.device)
    upper = torch.triu((u < prob).to(prob.dtype), 1)
    return upper + upper.t()


class StructureGenerator(nn.Module):
    """GCond's parameterised graph generator (PGE): an MLP on every ordered pair of synthetic nodes.

    ``z_ij = MLP([x_i; x_j])`` with ``Linear(2d, h) -> BN -> ReLU -> (Linear(h, h) -> BN -> ReLU) x (nlayers - 2) ->
    Linear(h, 1)``; ``A = sigmoid((Z + Z^T) / 2)`` with the diagonal set to 0. The first layer is applied as
    ``W_a x_i + W_b x_j`` (the two halves of one ``Linear(2d, h)``), which is the same function as on the
    concatenation but costs ``n d h + n^2 h`` instead of ``n^2 d h``.

    Args:
        in_dim: feature dimension ``d``.
        hidden: width ``h`` (128 in GCond for Cora/CiteSeer).
        nlayers: number of linear layers (3 in GCond).
        init_bias: initial bias of the output layer (``None``: PyTorch's default, as GCond, which starts every edge
            near probability 0.5; e.g. -3 starts near an empty graph).

    Shapes:
        x: ``(n, d)``; :meth:`logits` returns the symmetric ``(n, n)`` ``(Z + Z^T) / 2``.
    """

    def __init__(self, *, in_dim: int, hidden: int = 128, nlayers: int = 3, init_bias: float | None = None) -> None:
        super().__init__()
        if nlayers < 2:
            raise DataValidationError(f"the structure generator needs >= 2 layers, got {nlayers}")
        self.in_dim = in_dim
        self.layers = nn.ModuleList([nn.Linear(2 * in_dim, hidden)])
        self.layers.extend(nn.Linear(hidden, hidden) for _ in range(nlayers - 2))
        self.layers.append(nn.Linear(hidden, 1))
        self.bns = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(nlayers - 1))
        if init_bias is not None:  # start from edge probabilities ~sigmoid(init_bias) instead of ~0.5
            nn.init.constant_(self.layers[-1].bias, init_bias)

    def logits(self, x: Tensor) -> Tensor:
        n = len(x)
        first = self.layers[0]
        w_i, w_j = first.weight[:, : self.in_dim], first.weight[:, self.in_dim:]
        h = (x @ w_i.t() + first.bias)[:, None, :] + (x @ w_j.t())[None, :, :]
        h = h.reshape(n * n, -1)
        for i, layer in enumerate(self.layers[1:]):
            h = F.relu(self.bns[i](h))
            h = layer(h)
        z = h.reshape(n, n)
        return (z + z.t()) / 2

    def forward(self, x: Tensor) -> Tensor:
        """The weighted adjacency ``(n, n)`` in ``(0, 1)`` with a zero diagonal."""
        adj = torch.sigmoid(self.logits(x))
        return adj - torch.diag(torch.diag(adj))


@register_summary_type
class GraphSummary(Summary):
    """A condensed graph ``(X', A', Y')``.

    Args:
        x: node features ``(n, d)`` (learnable).
        labels: node classes ``(n,)``.
        num_classes: number of classes.
        structure: ``"pge"``, ``"identity"`` or ``"fixed"`` (see the module docstring).
        adj_index: edges ``(2, E)`` of a ``"fixed"`` structure (both directions of each undirected edge).
        adj_value: their weights ``(E,)``.
        generator: the structure generator of a ``"pge"`` structure (one is built when omitted).
        generator_hidden: its width when built here.
        generator_layers: its depth when built here.
        generator_init_bias: its output layer's initial bias when built here (see :class:`StructureGenerator`).
        threshold: generated entries below it are dropped at evaluation and in the artifact.
        discrete: evaluate the generated structure as a 0/1 graph (entries >= ``threshold`` become 1), the mode of
            DosCond's Bernoulli edges when ``threshold`` is 0.5.
        sample_seed: when set (with ``discrete``), the evaluated 0/1 graph is instead one draw of the Bernoulli graph
            whose edge probabilities are the generated entries (each unordered pair once, mirrored), from a
            generator seeded with it, so every call gives the same graph (DosCond's evaluation).
        summary_options: ``label_kind``, ``label_values``, ``learn_lr``, ``lr_init``, ``preprocessing``, passed to
            :class:`~distill_core.synset.Summary`, which holds their defaults.

    Shapes:
        ``x``: ``(n, d)``; ``labels``: ``(n,)``; :meth:`adjacency`: ``(n, n)``.
    """

    summary_type: ClassVar[str] = "graph"

    def __init__(
        self,
        *,
        x: Tensor,
        labels: Tensor,
        num_classes: int,
        structure: StructureKind = "identity",
        adj_index: Tensor | None = None,
        adj_value: Tensor | None = None,
        generator: StructureGenerator | None = None,
        generator_hidden: int = 128,
        generator_layers: int = 3,
        generator_init_bias: float | None = None,
        threshold: float = 0.0,
        discrete: bool = False,
        sample_seed: int | None = None,
        **summary_options: Any,
    ) -> None:
        super().__init__(x=x, labels=labels, num_classes=num_classes, **summary_options)
        if x.dim() != 2:
            raise DataValidationError(f"graph summary features must be (n, d), got {tuple(x.shape)}")
        if structure not in ("pge", "identity", "fixed"):
            raise DataValidationError(f"unknown structure {structure!r}; use 'pge', 'identity' or 'fixed'")
        self.structure: StructureKind = structure
        self.threshold = float(threshold)
        self.discrete = bool(discrete)
        self.sample_seed = None if sample_seed is None else int(sample_seed)
        self.budget_resolution: dict[str, Any] | None = None  # set by the methods: what the request resolved to
        self.generator: StructureGenerator | None = None
        n = len(x)
        if structure == "pge":
            self.generator = generator or StructureGenerator(in_dim=x.shape[1], hidden=generator_hidden,
                                                             nlayers=generator_layers, init_bias=generator_init_bias)
        index = adj_index if adj_index is not None else torch.zeros(2, 0, dtype=torch.long)
        value = adj_value if adj_value is not None else torch.ones(index.shape[1])
        if structure != "fixed" and index.numel():
            raise DataValidationError(f"a {structure!r} structure takes no adjacency; use structure='fixed'")
        if index.dim() != 2 or index.shape[0] != 2 or value.shape != (index.shape[1],):
            raise DataValidationError(f"adj_index must be (2, E) and adj_value (E,), got {tuple(index.shape)} and "
                                      f"{tuple(value.shape)}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= n):
            raise DataValidationError(f"adj_index refers to nodes outside 0..{n - 1}")
        self.register_buffer("adj_index", index.long().clone())
        self.register_buffer("adj_value", value.float().clone())

    # -- structure ----------------------------------------------------------------------------------------------
    def adjacency(self) -> Tensor:
        """The dense synthetic adjacency ``(n, n)`` as the methods see it (differentiable for ``"pge"``)."""
        if self.structure == "pge":
            assert self.generator is not None
            return self.generator(self.x)
        return self._fixed_dense()

    def _fixed_dense(self) -> Tensor:
        n = len(self.x)
        dense = torch.zeros(n, n, device=self.x.device)
        if self.adj_index.numel():
            dense.index_put_((self.adj_index[0], self.adj_index[1]), self.adj_value, accumulate=True)
        return dense

    @torch.no_grad()
    def generated_adjacency(self) -> Tensor:
        """The generator's weighted adjacency without threshold (GCond's ``pge.inference``, which its inner loop
        trains on), computed with batch statistics as :meth:`eval_adjacency`. Detached, dense ``(n, n)``; the fixed
        adjacency for other structures."""
        if self.structure != "pge":
            return self._fixed_dense()
        assert self.generator is not None
        # batch-norm over all n^2 pairs with their own statistics (the graph the methods trained through), as GCond's
        # pge.inference, which runs the generator in training mode; unlike it, the running statistics (which
        # nothing reads) are left untouched
        was_training = self.generator.training
        momenta = [bn.momentum for bn in self.generator.bns]
        self.generator.train()
        for bn in self.generator.bns:
            bn.momentum = 0.0
        try:
            return self.generator(self.x.detach())
        finally:
            for bn, momentum in zip(self.generator.bns, momenta):
                bn.momentum = momentum
            self.generator.train(was_training)

    @torch.no_grad()
    def eval_adjacency(self) -> Tensor:
        """The adjacency used to evaluate and stored in artifacts: :meth:`generated_adjacency` with entries below
        ``threshold`` set to 0 (or 0/1 when ``discrete``). Detached, dense ``(n, n)``."""
        if self.structure != "pge":
            return self._fixed_dense()
        adj = self.generated_adjacency()
        if self.discrete and self.sample_seed is not None:
            return bernoulli_graph(adj, torch.Generator().manual_seed(self.sample_seed))
        if self.discrete:
            return (adj >= self.threshold).to(adj.dtype).fill_diagonal_(0)
        return torch.where(adj >= self.threshold, adj, torch.zeros_like(adj)) if self.threshold > 0 else adj

    def sparse_adjacency(self) -> tuple[Tensor, Tensor]:
        """``(edge_index (2, E), edge_weight (E,))`` of :meth:`eval_adjacency` (non-zero entries only)."""
        if self.structure != "pge":
            return self.adj_index.clone(), self.adj_value.clone()
        adj = self.eval_adjacency()
        index = adj.nonzero().t()
        return index, adj[index[0], index[1]]

    @property
    def num_edges(self) -> int:
        """Stored (directed) entries of the evaluation adjacency."""
        return int(self.sparse_adjacency()[0].shape[1])

    def structure_parameters(self) -> list[nn.Parameter]:
        """Learnable parameters of the structure (empty unless the structure is generated)."""
        return [] if self.generator is None else list(self.generator.parameters())

    def to_pyg(self) -> Any:
        """The condensed graph as a ``torch_geometric.data.Data`` (``x``, ``edge_index``, ``edge_weight``, ``y``)."""
        from torch_geometric.data import Data

        index, value = self.sparse_adjacency()
        return Data(x=self.x.detach().clone(), edge_index=index, edge_weight=value, y=self.labels.clone())

    # -- serialisation ------------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        index, _ = self.sparse_adjacency()
        return {
            **super().describe(),
            "structure": self.structure,
            "threshold": self.threshold,
            "discrete": self.discrete,
            **({"evaluated_structure": "bernoulli_sample", "sample_seed": self.sample_seed}
               if self.discrete and self.sample_seed is not None and self.structure == "pge" else {}),
            "num_edges": int(index.shape[1]),
            "class_sizes": torch.bincount(self.labels, minlength=self.num_classes).tolist(),
            **({"budget_resolution": self.budget_resolution} if self.budget_resolution else {}),
        }

    def tensors(self) -> dict[str, Tensor]:
        index, value = self.sparse_adjacency()
        return {**super().tensors(), "adj_index": index.cpu().contiguous(), "adj_value": value.cpu().contiguous()}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any],
                     preprocessing: Preprocessing) -> GraphSummary:
        try:
            summary = cls(
                x=tensors["x"], labels=tensors["labels"], num_classes=int(meta["num_classes"]),
                structure="fixed", adj_index=tensors["adj_index"], adj_value=tensors["adj_value"],
                threshold=float(meta.get("threshold", 0.0)), label_kind=meta.get("label_kind", "hard"),
                label_values=tensors.get("label_values"), learn_lr="raw_lr" in tensors, preprocessing=preprocessing)
        except KeyError as exc:
            raise ArtifactError(f"the graph artifact lacks {exc}; re-create it with `distill run`") from exc
        if "raw_lr" in tensors and summary.raw_lr is not None:
            summary.raw_lr.data.copy_(tensors["raw_lr"].reshape(()))
        return summary
