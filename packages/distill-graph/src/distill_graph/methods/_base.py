"""What GCond, GCond-X, DosCond and GCDM share: the condensed-graph initialisation, the real graph's class batches
(sparse, exact), the backbone, and the alternation between structure and feature updates."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import subgraph

from distill_core.coreset import initial_indices
from distill_core.data import Budget, RealData
from distill_core.errors import DataValidationError
from distill_core.method import Method, MethodConfig, StepContext
from distill_core.modality import Modality
from distill_core.synset import Summary

from ..data import GraphContext, graph_context
from ..graph import Propagation, csr_rows, khop_batch, sub_propagation, to_sparse_x
from ..models import SGC, build_graph_model
from ..summary import GraphSummary, StructureKind

__all__ = ["GraphCondensation", "GraphCondensationConfig", "RealGraph", "gcond_class_sizes"]

logger = logging.getLogger(__name__)


@dataclass
class GraphCondensationConfig(MethodConfig):
    """Options shared by the graph condensation methods (defaults: GCond on Cora/CiteSeer, Adam over the summary)."""

    defaults = {"optimizer": "adam"}
    steps: int = field(default=600, metadata={"help": "epochs (one fresh model each)"})
    lr_summary: float = field(default=1e-4, metadata={"help": "learning rate of the synthetic features (lr_feat)"})
    lr_adj: float = field(default=1e-4, metadata={"help": "learning rate of the structure generator"})
    structure: Literal["pge", "identity"] = field(default="pge", metadata={
        "help": "'pge': adjacency generated from features (GCond); 'identity': no edges (GCond-X)"})
    structure_period: int = field(default=50, metadata={"help": "alternation period in epochs"})
    structure_epochs: int = field(default=10, metadata={
        "help": "the first this many epochs of each period update the structure, the rest the features"})
    joint_updates: bool = field(default=False, metadata={
        "help": "update structure and features together every epoch instead of alternating (DosCond's Algorithm 1)"})
    generator_hidden: int = field(default=128, metadata={"help": "width of the structure generator MLP"})
    generator_layers: int = field(default=3, metadata={"help": "linear layers of the structure generator"})
    generator_init_bias: float | None = field(default=None, metadata={
        "help": "initial output bias of the structure generator (None: GCond's default init, edges start near 0.5)"})
    threshold: float = field(default=0.05, metadata={
        "help": "generated edges below it are dropped at evaluation and in the artifact (GCond's tester: 0.05)"})
    backbone: Literal["sgc", "gcn"] = field(default="sgc", metadata={"help": "model whose gradients are matched"})
    nlayers: int = field(default=2, metadata={"help": "backbone layers (propagation steps for SGC)"})
    hidden: int = field(default=256, metadata={"help": "backbone width (GCN)"})
    lr_model: float = field(default=0.01, metadata={"help": "Adam learning rate of the backbone's inner updates"})
    outer: int = field(default=20, metadata={"help": "summary updates per epoch"})
    inner: int = field(default=15, metadata={"help": "backbone updates on the synthetic graph between them"})
    inner_adjacency: Literal["dense", "thresholded"] = field(default="dense", metadata={
        "help": "graph of the inner backbone updates: 'dense': the generator's weighted adjacency without threshold "
                "(GCond's reference: pge.inference); 'thresholded': entries below `threshold` dropped, as at "
                "evaluation"})
    batch_real: int = field(default=256, metadata={"help": "real training nodes per class and update"})
    inductive: bool = field(default=False, metadata={
        "help": "condense from the subgraph induced by the training nodes only (inductive setting)"})


def gcond_class_sizes(counts: list[int], total: int) -> list[int]:
    """GCond's per-class allocation (``generate_labels_syn``): classes in increasing size get
    ``max(int(count * total / n_train), 1)``, the largest class takes the remainder."""
    n = sum(counts)
    order = sorted(range(len(counts)), key=lambda c: counts[c])
    sizes = [0] * len(counts)
    for c in order[:-1]:
        sizes[c] = max(int(counts[c] * total / n), 1)
    sizes[order[-1]] = total - sum(sizes)
    return sizes


class RealGraph:
    """The real graph a method condenses (the whole graph, or the training subgraph when inductive) with exact
    class batches: the logits of a ``L``-layer model at a batch come from the batch's ``L``-hop neighbourhood with
    whole-graph normalisation, i.e. they equal the full-graph logits without ever touching the rest of the graph."""

    def __init__(self, data: RealData, *, inductive: bool, device: torch.device | str = "cpu") -> None:
        ctx: GraphContext = graph_context(data, device)
        self.device = ctx.device
        graph = ctx.graph
        self.x = graph.x
        if inductive:
            nodes = ctx.train_nodes
            self.edge_index, _ = subgraph(nodes, graph.edge_index, relabel_nodes=True, num_nodes=ctx.num_nodes)
            self.x = graph.x[nodes]
            self.num_nodes = len(nodes)
            self.train_nodes = torch.arange(len(nodes), device=self.device)
        else:
            self.edge_index = graph.edge_index
            self.num_nodes = ctx.num_nodes
            self.train_nodes = ctx.train_nodes
        self.x_sparse = to_sparse_x(self.x)
        ones = torch.ones(self.edge_index.shape[1], device=self.device)
        self.degree_gcn = torch.ones(self.num_nodes, device=self.device).index_add_(0, self.edge_index[0], ones)
        self._sgc: dict[int, Tensor] = {}

    def sgc_features(self, k: int) -> Tensor:
        """``A_hat^k X`` at the training nodes (in training order), computed once with sparse products."""
        if k not in self._sgc:
            prop = Propagation.from_edges(self.edge_index, self.num_nodes)
            self._sgc[k] = prop.propagate_k(self.x_sparse, k)[self.train_nodes]
        return self._sgc[k]

    def logits(self, model: nn.Module, train_idx: Tensor, *, hops: int) -> Tensor:
        """Logits of ``model`` at the training nodes ``train_idx`` (indices into the training nodes)."""
        train_idx = train_idx.to(self.device)
        if isinstance(model, SGC):
            return model.forward_propagated(self.sgc_features(model.k)[train_idx])
        subset, sub_edges, mapping = khop_batch(self.edge_index, self.num_nodes, self.train_nodes[train_idx], hops)
        return model(csr_rows(self.x_sparse, subset), sub_propagation(subset, sub_edges, self.degree_gcn))[mapping]

    def embeddings(self, model: nn.Module, train_idx: Tensor, *, hops: int) -> list[Tensor]:
        """Every layer's node states (``model.embed``) at the training nodes ``train_idx``."""
        train_idx = train_idx.to(self.device)
        subset, sub_edges, mapping = khop_batch(self.edge_index, self.num_nodes, self.train_nodes[train_idx], hops)
        x = csr_rows(self.x_sparse, subset)
        return [h[mapping] for h in model.embed(x, sub_propagation(subset, sub_edges, self.degree_gcn))]


@contextlib.contextmanager
def frozen(params: list[nn.Parameter]) -> Iterator[None]:
    """Temporarily exclude ``params`` from autograd (their ``grad`` stays ``None``, so the optimizer skips them)."""
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class GraphCondensation(Method[GraphCondensationConfig]):
    """Base of the graph condensation methods (not registered itself)."""

    modality = "graph"
    structure_kind: StructureKind = "pge"
    discrete: bool = False
    #: evaluate one seeded Bernoulli draw of the generated edge probabilities (DosCond) instead of thresholding
    sampled_evaluation: bool = False

    def __init__(self, *, config: GraphCondensationConfig | None = None) -> None:
        super().__init__(config=config)
        self.real: RealGraph | None = None

    # -- summary ------------------------------------------------------------------------------------------------
    def init_summary(self, data: RealData, *, budget: Budget, modality: Modality,
                     generator: torch.Generator) -> Summary:
        """Synthetic nodes start as random real training nodes of their class (GCond); the structure is a fresh
        generator (``"pge"``) or none (``"identity"``). The per-class sizes are the core's, which are GCond's
        (``gcond_class_sizes``) for the papers' budgets; a difference is logged."""
        if "graph" not in data.extra:
            raise DataValidationError(f"{self.name} condenses graphs; {data.name} is not one (load it with the graph "
                                      "modality)")
        sizes = budget.per_class(data)
        counts = data.class_counts()
        total = sum(sizes)
        base = int(data.extra.get("ratio_base", len(data.y_train)))
        logger.info("%s: budget %s -> %d synthetic nodes (%s per class) = %.3f%% of %d nodes", self.name,
                    budget.describe(), total, sizes, 100.0 * total / base, base)
        # every ratio in [lo, hi) resolves to this size (lesson 10: requests that collapse to one size are flagged)
        lo, hi = (total - 0.5) / base, (total + 0.5) / base
        if budget.ratio is not None:
            logger.info("%s: every --ratio in [%.5f, %.5f) gives these %d nodes", self.name, lo, hi, total)
            if abs(total / base - budget.ratio) > 0.1 * budget.ratio:
                logger.warning("%s: --ratio %g resolves to %d nodes = %.4f of the graph, not %g", self.name,
                               budget.ratio, total, total / base, budget.ratio)
        reference = gcond_class_sizes(counts, total)
        if budget.ipc is None and reference != sizes:
            logger.warning("%s: GCond would allot %s nodes per class; using %s as the coreset baselines do",
                           self.name, reference, sizes)
        cfg = self.config
        chosen = initial_indices(cfg.init, data, sizes, modality=modality, generator=generator)
        structure = "identity" if cfg.structure == "identity" else self.structure_kind
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))  # generator weights
        summary = GraphSummary(x=data.x_train[chosen], labels=data.y_train[chosen], num_classes=data.num_classes,
                               structure=structure, generator_hidden=cfg.generator_hidden,
                               generator_layers=cfg.generator_layers,
                               generator_init_bias=cfg.generator_init_bias, threshold=cfg.threshold,
                               discrete=self.discrete, label_kind=cfg.label_kind,
                               preprocessing=data.preprocessing)
        if cfg.init == "noise":
            summary.x.data.normal_(generator=generator)
        if self.sampled_evaluation:  # drawn last: the other methods' initialisation stays as it was
            summary.sample_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        summary.budget_resolution = {"request": budget.describe(), "per_class": sizes, "total": total,
                                     "of_nodes": base, "ratio": round(total / base, 6),
                                     "same_size_ratios": [round(lo, 6), round(hi, 6)]}
        return summary

    def param_groups(self, summary: Summary) -> list[dict[str, Any]]:
        groups = super().param_groups(summary)
        if isinstance(summary, GraphSummary) and summary.structure_parameters():
            groups.append({"params": summary.structure_parameters(), "lr": self.config.lr_adj})
        return groups

    def make_optimizer(self, summary: Summary) -> torch.optim.Optimizer:
        """The core's optimizer over :meth:`param_groups`; Adam runs fused (one kernel per step, same math)."""
        if self.config.optimizer == "adam":
            return torch.optim.Adam(self.param_groups(summary), fused=True)
        return super().make_optimizer(summary)

    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:
        self.real = RealGraph(data, inductive=self.config.inductive, device=device)
        counts = torch.bincount(summary.labels, minlength=summary.num_classes)
        self.class_weight = (counts.float() / counts.max()).tolist()  # GCond: n_syn_c / max_c n_syn_c

    # -- pieces of a step ---------------------------------------------------------------------------------------
    def fresh_backbone(self, data: RealData, device: torch.device) -> nn.Module:
        cfg = self.config
        return build_graph_model(cfg.backbone, in_dim=data.sample_shape[-1], num_classes=data.num_classes,
                                 hidden=cfg.hidden, nlayers=cfg.nlayers, dropout=0.0).to(device)

    def structure_phase(self, summary: GraphSummary, step: int) -> bool:
        """True when this epoch updates the structure generator (GCond: epochs with ``step % 50 < 10``)."""
        cfg = self.config
        return bool(summary.structure_parameters()) and cfg.lr_adj > 0 and \
            step % cfg.structure_period < cfg.structure_epochs

    @contextlib.contextmanager
    def phase(self, summary: GraphSummary, step: int) -> Iterator[None]:
        """Freeze what this epoch does not update (features during structure epochs, the generator otherwise)."""
        if not summary.structure_parameters() or (self.config.joint_updates and self.config.lr_adj > 0):
            yield
            return
        still = [summary.x] if self.structure_phase(summary, step) else summary.structure_parameters()
        with frozen(still):
            yield

    def synthetic_graph(self, summary: GraphSummary, ctx: StepContext) -> Tensor:
        """The dense synthetic adjacency of this update (differentiable)."""
        return summary.adjacency()

    def inner_adjacency(self, summary: GraphSummary) -> Tensor:
        """The detached synthetic adjacency the backbone trains on between summary updates: the generator's dense
        output (``inner_adjacency="dense"``, the reference's ``pge.inference``) or the evaluated, thresholded one."""
        if self.config.inner_adjacency == "thresholded":
            return summary.eval_adjacency()
        return summary.generated_adjacency()

    def train_inner(self, model: nn.Module, summary: GraphSummary, opt: torch.optim.Optimizer, steps: int) -> None:
        """``steps`` Adam updates of the backbone on the (detached) synthetic graph (:meth:`inner_adjacency`), as
        GCond between updates."""
        if steps <= 0:
            return
        x = summary.x.detach()
        graph = Propagation.from_dense(self.inner_adjacency(summary))
        if isinstance(model, SGC):  # its propagation has no parameter: smooth the features once
            h = graph.propagate_k(x, model.k)
            forward = lambda: model.forward_propagated(h)  # noqa: E731
        else:
            forward = lambda: model(x, graph)  # noqa: E731
        for _ in range(steps):
            loss = F.cross_entropy(forward(), summary.labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def sample_class(self, ctx: StepContext, c: int) -> Tensor:
        return ctx.class_index.sample(c, self.config.batch_real, generator=ctx.generator)

    def state_dict(self) -> dict[str, Any]:
        return {}
