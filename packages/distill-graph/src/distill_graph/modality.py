"""The graph modality: citation graphs and users' graphs, GNNs, GCond's evaluation protocol, induced-subgraph
coresets and drawings of condensed graphs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.utils import subgraph

from distill_core.data import RealData
from distill_core.evaluation import EvalProtocol
from distill_core.modality import Modality, ModelFit, SummaryInfo
from distill_core.preprocessing import Preprocessing
from distill_core.registry import register_modality
from distill_core.synset import Summary

from .data import DATASETS, graph_context, load_graph, npz_has_graph, real_data_from_graph
from .graph import Propagation
from .models import MODEL_NAMES, build_graph_model
from .summary import GraphSummary
from .training import fit_graph_model, split_model_kwargs, trained_gcn_embedding

__all__ = ["GraphModality", "cross_architecture_protocols"]

#: GCond's cross-architecture evaluation (test_other_arcs.py): the same 600-epoch fit, dropout 0.
CROSS_MODELS = ["gcn", "sgc", "sage", "appnp", "mlp"]


def cross_architecture_protocols(protocol: EvalProtocol) -> list[EvalProtocol]:
    """One protocol per architecture of GCond's cross-architecture table (dropout 0 as its tester)."""
    return [protocol.with_(model=m, model_kwargs={**protocol.model_kwargs, "dropout": 0.0}) for m in CROSS_MODELS]


@register_modality
class GraphModality(Modality):
    """Node classification on graphs (transductive; inductive condensation with the methods' ``inductive``
    option)."""

    name = "graph"

    # -- data ---------------------------------------------------------------------------------------------------
    def dataset_names(self) -> list[str]:
        return list(DATASETS)

    def claims(self, spec: str) -> bool:
        if spec in DATASETS or spec.startswith("pyg:"):
            return True
        # vision also reads npz files (with x_train): claim only those that hold a graph
        return spec.startswith("npz:") and npz_has_graph(spec[4:])

    def load_dataset(self, spec: str, *, root: str | None = None,
                     preprocessing: Preprocessing | None = None) -> RealData:
        graph = load_graph(spec, root=root)
        return real_data_from_graph(graph, name=spec, preprocessing=preprocessing)

    # -- models -------------------------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return list(MODEL_NAMES)

    def build_model(self, name: str, *, sample_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        arch, _ = split_model_kwargs(kwargs)
        return build_graph_model(name, in_dim=int(sample_shape[-1]), num_classes=num_classes, **arch)

    def default_protocol(self, dataset: dict[str, Any], summary: Summary) -> EvalProtocol:
        """GCond's ``test_with_val``: 2-layer GCN, hidden 256, dropout 0.5, Adam lr 0.01, weight decay 5e-4,
        600 epochs with lr x0.1 at 300, the epoch with the best validation accuracy on the original graph, test on
        its test nodes; 5 runs (GCond: 3 in its built-in test, 10 in the cross-architecture script)."""
        return EvalProtocol(model="gcn", model_kwargs={"hidden": 256, "nlayers": 2, "dropout": 0.5,
                                                       "optimizer": "adam"},
                            epochs=600, lr=0.01, momentum=0.0, weight_decay=5e-4, batch_size=0,
                            schedule="step_half", n_models=5, selection="best_val")

    def train_and_test(self, summary: Summary, data: RealData, fit: ModelFit) -> float:
        """Train one fresh ``protocol.model`` on the condensed graph and test it on the original graph."""
        ctx = graph_context(data, fit.device)
        x_syn, targets = (t.to(fit.device) for t in summary.materialize())
        adj = summary.eval_adjacency() if isinstance(summary, GraphSummary) else torch.zeros(len(x_syn), len(x_syn))
        adj = adj.to(fit.device)
        arch, options = split_model_kwargs(fit.protocol.model_kwargs)
        model = build_graph_model(fit.protocol.model, in_dim=x_syn.shape[1], num_classes=data.num_classes, **arch)
        return fit_graph_model(model.to(fit.device), x_syn, Propagation.from_dense(adj), targets, ctx,
                               protocol=fit.protocol, lr=fit.lr, optimizer=options.get("optimizer", "adam"))

    # -- coresets -----------------------------------------------------------------------------------------------
    def features(self, data: RealData, indices: Tensor, *, seed: int) -> Tensor:
        """Coreset features of the training nodes at ``indices``: as GCond's herding / k-center baselines, the
        log-probabilities of a GCN trained on the whole real graph (:func:`trained_gcn_embedding`; trained once per
        dataset with a fixed seed and cached). In the inductive setting, where the test part of the graph must
        stay unseen, the training-free SGC features ``A_hat^2 X`` are used instead."""
        ctx = graph_context(data)
        if ctx.inductive:
            propagated = ctx.cached("sgc2", lambda: ctx.full.propagate_k(ctx.x_sparse, 2))
            return propagated[ctx.train_nodes[indices]]
        embeds = ctx.cached("coreset_gcn", lambda: trained_gcn_embedding(data, self.default_protocol({}, None)))
        return embeds[ctx.train_nodes[indices]]

    def subset_summary(self, data: RealData, indices: Tensor, **kwargs: Any) -> Summary:
        """The subgraph induced by the training nodes at ``indices`` (features, labels and their edges)."""
        ctx = graph_context(data)
        nodes = ctx.train_nodes[indices]
        edge_index, _ = subgraph(nodes, ctx.graph.edge_index, relabel_nodes=True, num_nodes=ctx.num_nodes)
        return GraphSummary(x=data.x_train[indices], labels=data.y_train[indices], num_classes=data.num_classes,
                            structure="fixed", adj_index=edge_index, adj_value=torch.ones(edge_index.shape[1]),
                            preprocessing=data.preprocessing, **kwargs)

    # -- display ------------------------------------------------------------------------------------------------
    def render(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """Draw the condensed graph: one coloured disc per node (colour = class), grey lines for edges, a legend
        naming each class's colour (and its number of nodes)."""
        from .render import draw_graph

        adj = summary.eval_adjacency() if isinstance(summary, GraphSummary) else torch.zeros(0, 0)
        return draw_graph(adj, summary.labels, summary.num_classes, path,
                          class_names=info.class_names)

    def export(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """The condensed graph as ``.npz`` (x, edge_index, edge_weight, y), readable with numpy alone."""
        if not isinstance(summary, GraphSummary):
            raise NotImplementedError("only graph summaries can be exported by the graph modality")
        index, value = summary.sparse_adjacency()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez(handle, x=summary.x.detach().numpy(), edge_index=index.numpy(), edge_weight=value.numpy(),
                     y=summary.labels.numpy())
        return path
