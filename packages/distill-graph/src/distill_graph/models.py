"""Graph neural networks used to condense and to evaluate: GCN, SGC, GraphSAGE, APPNP and an MLP.

All take ``(x, graph)`` where ``graph`` is a :class:`~distill_graph.graph.Propagation` (sparse for the real graph,
dense for the synthetic one) and return logits ``(N, num_classes)``. Weights are ``nn.Linear`` layers, whose default
initialisation (uniform +-1/sqrt(in_features) for weight and bias) is the one of GCond's ``GraphConvolution``, and
whose ``(out, in)`` layout makes the rows of a weight gradient the output units, as the layer-wise matching distance
expects. Node features may be a sparse CSR matrix (bag-of-words features); the first layer then costs ``nnz(x)``.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.errors import UnknownNameError

from .graph import Propagation, matmul

__all__ = ["APPNP", "GCN", "MLP", "MODEL_NAMES", "SGC", "GraphSAGE", "build_graph_model"]

MODEL_NAMES = ["appnp", "gcn", "mlp", "sage", "sgc"]


def _linear(x: Tensor, layer: nn.Linear, *, bias: bool = True) -> Tensor:
    out = matmul(x, layer.weight.t())
    return out + layer.bias if bias and layer.bias is not None else out


def _linear_stack(in_dim: int, num_classes: int, hidden: int, nlayers: int, *, bias: bool = True) -> nn.ModuleList:
    """``nlayers`` linear layers ``in_dim -> hidden -> ... -> num_classes``, initialised in order."""
    dims = [in_dim] + [hidden] * (nlayers - 1) + [num_classes]
    return nn.ModuleList(nn.Linear(a, b, bias=bias) for a, b in itertools.pairwise(dims))


def _between_layers(h: Tensor, layer: int, layers: int, dropout: float, training: bool) -> Tensor:
    """ReLU and dropout after every layer but the last (whose output is the logits)."""
    return F.dropout(F.relu(h), dropout, training) if layer < layers - 1 else h


class GCN(nn.Module):
    """Graph convolutional network (Kipf & Welling, ICLR 2017, https://arxiv.org/abs/1609.02907).

    ``H_{l+1} = act(A_hat H_l W_l + b_l)`` with ``A_hat = D^-1/2 (A + I) D^-1/2``; ReLU and dropout between layers.

    Args:
        in_dim: feature dimension.
        num_classes: output classes.
        hidden: hidden width.
        nlayers: number of graph convolutions.
        dropout: dropout rate between layers.

    Shapes:
        x: ``(N, in_dim)`` (dense or sparse CSR); returns ``(N, num_classes)`` logits.
    """

    def __init__(self, *, in_dim: int, num_classes: int, hidden: int = 256, nlayers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.layers = _linear_stack(in_dim, num_classes, hidden, nlayers)
        self.dropout = dropout

    def embed(self, x: Tensor, graph: Propagation) -> list[Tensor]:
        """The node states after every layer (hidden ones after ReLU), the last one being the logits."""
        states = []
        h = x
        for i, layer in enumerate(self.layers):
            h = _between_layers(graph.gcn(_linear(h, layer, bias=False)) + layer.bias, i, len(self.layers),
                                self.dropout, self.training)
            states.append(h)
        return states

    def forward(self, x: Tensor, graph: Propagation) -> Tensor:
        return self.embed(x, graph)[-1]


class SGC(nn.Module):
    """Simplified graph convolution (Wu et al., ICML 2019, https://arxiv.org/abs/1902.07153), GCond's variant:
    one linear layer and ``k`` propagations, ``A_hat^k X W + b``.

    :meth:`forward_propagated` takes precomputed ``A_hat^k X`` (rows of the real graph), which makes the real-data
    side of gradient matching a linear model on fixed features.

    Shapes:
        x: ``(N, in_dim)``; returns ``(N, num_classes)`` logits.
    """

    def __init__(self, *, in_dim: int, num_classes: int, nlayers: int = 2, hidden: int = 0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        del hidden, dropout  # SGC has neither; accepted so that one protocol fits every architecture
        self.k = nlayers
        self.layers = nn.ModuleList([nn.Linear(in_dim, num_classes)])

    def forward(self, x: Tensor, graph: Propagation) -> Tensor:
        h = _linear(x, self.layers[0], bias=False)
        for _ in range(self.k):
            h = graph.gcn(h)
        return h + self.layers[0].bias

    def forward_propagated(self, x_prop: Tensor) -> Tensor:
        return _linear(x_prop, self.layers[0])


class GraphSAGE(nn.Module):
    """GraphSAGE with mean aggregation (Hamilton et al., NeurIPS 2017, https://arxiv.org/abs/1706.02216):
    ``H_{l+1} = act(H_l W_self + mean_{j in N(i)} H_l W_neigh + b)``.

    Shapes:
        x: ``(N, in_dim)``; returns ``(N, num_classes)`` logits.
    """

    def __init__(self, *, in_dim: int, num_classes: int, hidden: int = 256, nlayers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.self_layers = _linear_stack(in_dim, num_classes, hidden, nlayers)
        self.neigh_layers = _linear_stack(in_dim, num_classes, hidden, nlayers, bias=False)
        self.dropout = dropout

    def forward(self, x: Tensor, graph: Propagation) -> Tensor:
        h = x
        for i, (lin_self, lin_neigh) in enumerate(zip(self.self_layers, self.neigh_layers)):
            h = _between_layers(_linear(h, lin_self) + graph.mean(_linear(h, lin_neigh, bias=False)), i,
                                len(self.self_layers), self.dropout, self.training)
        return h


class APPNP(nn.Module):
    """Predict then propagate (Gasteiger et al., ICLR 2019, https://arxiv.org/abs/1810.05997): a 2-layer MLP, then
    ``k`` steps of personalised PageRank ``Z <- (1 - alpha) A_hat Z + alpha H``.

    Shapes:
        x: ``(N, in_dim)``; returns ``(N, num_classes)`` logits.
    """

    def __init__(self, *, in_dim: int, num_classes: int, hidden: int = 256, nlayers: int = 2,
                 dropout: float = 0.5, k: int = 10, alpha: float = 0.1) -> None:
        super().__init__()
        del nlayers
        self.lin1 = nn.Linear(in_dim, hidden)
        self.lin2 = nn.Linear(hidden, num_classes)
        self.dropout, self.k, self.alpha = dropout, k, alpha

    def forward(self, x: Tensor, graph: Propagation) -> Tensor:
        h = F.dropout(F.relu(_linear(x, self.lin1)), self.dropout, self.training)
        h = self.lin2(h)
        z = h
        for _ in range(self.k):
            z = (1 - self.alpha) * graph.gcn(z) + self.alpha * h
        return z


class MLP(nn.Module):
    """A 2-layer perceptron on node features alone (ignores the graph): the structure-free reference.

    Shapes:
        x: ``(N, in_dim)``; returns ``(N, num_classes)`` logits.
    """

    def __init__(self, *, in_dim: int, num_classes: int, hidden: int = 256, nlayers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.layers = _linear_stack(in_dim, num_classes, hidden, nlayers)
        self.dropout = dropout

    def forward(self, x: Tensor, graph: Propagation | None = None) -> Tensor:
        h = x
        for i, layer in enumerate(self.layers):
            h = _between_layers(_linear(h, layer), i, len(self.layers), self.dropout, self.training)
        return h


_MODELS: dict[str, type[nn.Module]] = {"gcn": GCN, "sgc": SGC, "sage": GraphSAGE, "appnp": APPNP, "mlp": MLP}


def build_graph_model(name: str, *, in_dim: int, num_classes: int, **kwargs: Any) -> nn.Module:
    """A freshly initialised model ``name`` (one of :data:`MODEL_NAMES`)."""
    if name not in _MODELS:
        raise UnknownNameError("graph model", name, _MODELS)
    return _MODELS[name](in_dim=in_dim, num_classes=num_classes, **kwargs)
