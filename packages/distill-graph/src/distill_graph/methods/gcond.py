"""GCond: graph condensation by gradient matching (Jin, Zhao, Zhang, Liu, Tang & Shah, ICLR 2022,
https://arxiv.org/abs/2110.07580).

Algorithm (per epoch, one fresh backbone each): for ``outer`` rounds, for every class ``c`` the gradient of the
cross-entropy of the backbone on up to ``batch_real`` real training nodes of ``c`` (on the real graph) is matched
with its gradient on the synthetic nodes of ``c`` (on the generated graph ``A' = PGE(X')``) by the layer-wise
distance of DC, weighted by ``n_syn_c / max_c n_syn_c``; the summed loss updates either the structure generator
(the first ``structure_epochs`` of every ``structure_period`` epochs) or the features ``X'``. Between rounds the
backbone takes ``inner`` Adam steps on the synthetic graph: by default the generator's dense weighted adjacency, as
the reference's inner loop (``pge.inference``, no threshold); ``inner_adjacency="thresholded"`` trains on the
evaluated graph instead (edges below ``threshold`` dropped). The backbone is GCond's SGC (one linear layer and
``nlayers`` propagations). At evaluation, edges below ``threshold`` are dropped (GCond's cross-architecture
tester; its built-in test keeps the dense graph).

Differences from the reference, all on the real side: the real logits of a class batch are computed exactly from
the batch's ``nlayers``-hop neighbourhood (whole-graph normalisation) instead of GCond's [10, 5] neighbour
sampling, and for SGC from features ``A_hat^k X`` propagated once. Both give the full-graph gradient the sampler
estimates.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.method import StepContext
from distill_core.objectives import GradientMetric, classwise_gradient_match
from distill_core.synset import Summary

from ..graph import Propagation
from ..models import SGC
from ..summary import GraphSummary
from ._base import GraphCondensation, GraphCondensationConfig

__all__ = ["GCond", "GCondConfig", "class_gradient_matching_loss", "linear_class_gradients",
           "sgc_gradient_matching_loss"]


@dataclass
class GCondConfig(GraphCondensationConfig):
    """GCond's hyper-parameters for Cora/CiteSeer (ChandlerBang/GCond scripts/run_main.sh):
    600 epochs, lr_feat = lr_adj = 1e-4 (Adam), outer 20, inner 15, SGC with 2 propagations, lr_model 0.01, the
    layer-wise distance ``"ours"``."""

    dis_metric: GradientMetric = field(default="ours", metadata={
        "help": "gradient distance: 'ours' (layer-wise cosine), 'mse' or 'cos'"})
    closed_form_sgc: bool = field(default=True, metadata={
        "help": "per-class SGC gradients in closed form (same values as autograd, much faster)"})


def linear_class_gradients(h: Tensor, labels: Tensor, weight: Tensor, bias: Tensor, num_classes: int) -> tuple[
        Tensor, Tensor]:
    """Per-class gradients of the mean cross-entropy of a linear softmax layer ``h W^T + b``, in closed form.

    For the nodes of class ``k``: ``dL/dW = (P - Y)^T H / n_k`` and ``dL/db = mean(P - Y)``; all classes at once.

    Shapes:
        h: ``(n, d)``; labels: ``(n,)``; weight: ``(C, d)``; bias: ``(C,)``; returns ``(K, C, d)`` and ``(K, C)``
        with ``K = num_classes`` (zero for a class without nodes).
    """
    err = torch.softmax(h @ weight.t() + bias, -1) - F.one_hot(labels, weight.shape[0]).to(h.dtype)
    member = F.one_hot(labels, num_classes).to(h.dtype)
    member = member / member.sum(0, keepdim=True).clamp_min(1)
    g_bias = member.t() @ err
    g_weight = torch.einsum("nk,nc,nd->kcd", member, err, h)
    return g_weight, g_bias


def _class_distances(gw_real: Tensor, gb_real: Tensor, gw_syn: Tensor, gb_syn: Tensor,
                     metric: GradientMetric) -> Tensor:
    """:func:`~distill_core.objectives.gradient_match_distance` of each class's ``[W, b]`` gradients, ``(K,)``."""
    if metric == "ours":  # rows of W are output units; biases contribute nothing
        cos = (gw_real * gw_syn).sum(-1) / (gw_real.norm(dim=-1) * gw_syn.norm(dim=-1) + 1e-6)
        return (1 - cos).sum(-1)
    if metric == "mse":
        return ((gw_real - gw_syn) ** 2).sum((1, 2)) + ((gb_real - gb_syn) ** 2).sum(1)
    flat_real = torch.cat([gw_real.flatten(1), gb_real], 1)
    flat_syn = torch.cat([gw_syn.flatten(1), gb_syn], 1)
    return 1 - (flat_real * flat_syn).sum(1) / (flat_real.norm(dim=1) * flat_syn.norm(dim=1) + 1e-6)


def sgc_gradient_matching_loss(method: GraphCondensation, model: SGC, summary: GraphSummary, ctx: StepContext,
                               adj: Tensor, metric: GradientMetric) -> Tensor:
    """GCond's outer loss for the SGC backbone with closed-form per-class gradients (equal to
    :func:`class_gradient_matching_loss`, tested; one batched pass instead of one backward per class)."""
    assert method.real is not None
    layer = model.layers[0]
    weight, bias = layer.weight.detach(), layer.bias.detach()
    h_syn = Propagation.from_dense(adj).propagate_k(summary.x, model.k)
    gw_syn, gb_syn = linear_class_gradients(h_syn, summary.labels, weight, bias, summary.num_classes)
    present = torch.bincount(summary.labels, minlength=summary.num_classes) > 0
    real_idx = [method.sample_class(ctx, c) for c in range(summary.num_classes) if bool(present[c])]
    idx = torch.cat(real_idx)
    h_real = method.real.sgc_features(model.k)[idx.to(h_syn.device)]
    y_real = ctx.data.y_train[idx].to(h_syn.device)
    with torch.no_grad():
        gw_real, gb_real = linear_class_gradients(h_real, y_real, weight, bias, summary.num_classes)
    dist = _class_distances(gw_real, gb_real, gw_syn, gb_syn, metric)
    weights = torch.tensor(method.class_weight, dtype=dist.dtype, device=dist.device)
    return (weights * dist)[present].sum()


def class_gradient_matching_loss(method: GraphCondensation, model: nn.Module, summary: GraphSummary,
                                 ctx: StepContext, adj: Tensor, metric: GradientMetric) -> Tensor:
    """``sum_c w_c D(grad L_real_c, grad L_syn_c)`` for one backbone (GCond's outer loss), by autograd: the core's
    :func:`~distill_core.objectives.classwise_gradient_match` with GCond's class weights.

    Args:
        method: the method (its real graph, class weights and batch size).
        model: the backbone whose parameter gradients are matched.
        summary: the condensed graph.
        ctx: the step context (class sampling, seeded).
        adj: the dense synthetic adjacency of this update ``(n, n)``.
        metric: the gradient distance.
    """
    assert method.real is not None
    out_syn = model(summary.x, Propagation.from_dense(adj))
    real = method.real
    y_train = ctx.data.y_train

    def class_losses(c: int) -> tuple[Tensor, Tensor]:
        idx = method.sample_class(ctx, c)
        logits_real = real.logits(model, idx, hops=method.config.nlayers)
        mask = summary.labels == c
        return (F.cross_entropy(logits_real, y_train[idx].to(logits_real.device)),
                F.cross_entropy(out_syn[mask], summary.labels[mask]))

    present = [c for c in range(summary.num_classes) if bool((summary.labels == c).any())]
    return classwise_gradient_match(model, present, class_losses, metric=metric, weights=method.class_weight)


class GCond(GraphCondensation):
    """GCond (Jin et al., ICLR 2022): gradient matching with a generated structure."""

    config_class = GCondConfig
    paper = "https://arxiv.org/abs/2110.07580"
    config: GCondConfig

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        """One epoch: a fresh backbone, ``outer`` summary updates through ``ctx.update``, ``inner`` backbone steps
        between them."""
        assert isinstance(summary, GraphSummary)
        cfg = self.config
        model = self.fresh_backbone(ctx.data, ctx.device)
        opt_model = torch.optim.Adam(model.parameters(), lr=cfg.lr_model)
        losses = []
        for round_ in range(cfg.outer):
            with self.phase(summary, ctx.step):
                adj = self.synthetic_graph(summary, ctx)
                if isinstance(model, SGC) and cfg.closed_form_sgc:
                    loss = sgc_gradient_matching_loss(self, model, summary, ctx, adj, cfg.dis_metric)
                else:
                    loss = class_gradient_matching_loss(self, model, summary, ctx, adj, cfg.dis_metric)
                penalty = self.structure_penalty(summary, ctx)
                losses.append(ctx.update(loss if penalty is None else loss + penalty))
            if round_ < cfg.outer - 1:
                self.train_inner(model, summary, opt_model, cfg.inner)
        return statistics.fmean(losses)

    def structure_penalty(self, summary: GraphSummary, ctx: StepContext) -> Tensor | None:
        """A regulariser added to the matching loss (none in GCond)."""
        return None
