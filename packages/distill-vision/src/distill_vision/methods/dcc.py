"""Dataset Condensation with Contrastive Signals (DCC: Lee, Chun, Jung, Yun & Yoon, ICML 2022,
https://arxiv.org/abs/2202.02916).

DC/DSA gradient matching (:mod:`distill_vision.methods.dc`) with another matched pair. DC sums, over classes, the
distance between the gradient of the loss on a real batch of class ``c`` and on the synthetic images of class ``c``;
a class's synthetic images then never see the other classes. DCC matches one pair instead:

.. math::

    D\\Big(\\nabla_\\theta \\mathcal{L}(S),\\ \\frac{1}{C} \\sum_c \\nabla_\\theta \\mathcal{L}(T_c)\\Big)

where :math:`\\mathcal{L}(S)` is the cross-entropy on the *whole* synthetic set (all classes in one batch) and
:math:`\\mathcal{L}(T_c)` the cross-entropy on a real batch of class ``c``, so the gradient that the images of one
class receive depends on the logits of every class (the contrastive signal).

**Bi-level warm-up** (the reference's ``outer_warmup`` / ``inner_warmup``): while the outer step is below
``outer_warmup`` *and* the matching update within the step is below ``inner_warmup``, DC's class-wise loss is used
(exactly DC's, same random draws); from then on the contrastive one. Everything else is DC's: a fresh network every
outer step, ``outer_loop`` image updates per step with ``inner_loop`` epochs of the network on the synthetic set
between them, and with ``dsa_strategy`` set (or ``distill run dsac``) one Siamese DSA draw per class shared by the
class's real batch and its synthetic images (DSAC).

Names: the reference (Saehyung-Lee/DCC ``main.py``) calls the outer steps ``outer_loop``, the image updates per step
``inner_loop`` and the network epochs ``T``; here they are ``steps``, ``outer_loop`` and ``inner_loop`` as in DC, and
``inner_warmup`` counts image updates within a step.

Departures from the reference: the loop table is the reference's ``get_loops`` (IPC 1: 10 image updates and 5
network epochs per step, unlike DC's 1 and 1), other budgets take DC's nearest entry instead of failing; the reference
asserts ``outer_warmup <= outer iterations`` and ``inner_warmup <= image updates``, here a warm-up that outlasts the
run only logs a warning (``--resume`` may add steps); the synthetic set may start from noise (``init``; the
reference always starts from real images); the recorded loss is the optimised one (the reference prints, during
warm-up, the distance between the class-averaged gradients instead).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.data import RealData
from distill_core.method import Range, StepContext
from distill_core.objectives import GradientMetric, gradient_match_distance, loop_schedule, soft_cross_entropy
from distill_core.synset import Summary

from ..modality import default_strategy
from .dc import DC, DCConfig

__all__ = ["DCC", "DCCConfig", "DSAC", "DSACConfig", "contrastive_gradient_match", "dcc_loop_schedule"]

logger = logging.getLogger(__name__)

#: the reference's ``get_loops`` where it differs from DC's: IPC 1 -> 10 image updates, 5 network epochs per step
_DCC_LOOPS = {1: (10, 5)}


def dcc_loop_schedule(ipc: int) -> tuple[int, int]:
    """DCC's ``(outer_loop, inner_loop)`` for ``ipc``: image updates per outer step and network epochs between them
    (the reference's ``get_loops``; budgets other than 1 are DC's :func:`~distill_core.objectives.loop_schedule`)."""
    return _DCC_LOOPS.get(ipc) or loop_schedule(ipc)


def contrastive_gradient_match(
    net: nn.Module,
    real_batches: Sequence[tuple[Tensor, Tensor]],
    x_syn: Tensor,
    targets_syn: Tensor,
    *,
    metric: GradientMetric = "ours",
) -> Tensor:
    """DCC's matching loss: the gradient distance between the loss on all synthetic samples at once and the mean over
    classes of the real per-class loss gradients.

    Args:
        net: the network whose trainable parameters' gradients are matched.
        real_batches: one ``(x_real, y_real)`` batch per class (its gradient is detached).
        x_syn: the synthetic samples of every class, differentiable.
        targets_syn: their label rows.
        metric: gradient distance (:func:`~distill_core.objectives.gradient_match_distance`).

    Returns:
        A 0-d tensor, differentiable in ``x_syn``.

    Shapes:
        real_batches: ``C`` pairs ``((b_c, *sample_shape), (b_c,))``; x_syn: ``(n, *sample_shape)``;
        targets_syn: ``(n, num_classes)``; returns a 0-d tensor.
    """
    if not real_batches:
        raise ValueError("contrastive_gradient_match needs at least one real batch")
    params = [p for p in net.parameters() if p.requires_grad]
    g_real: list[Tensor] | None = None
    for x_real, y_real in real_batches:
        g_class = [g.detach() / len(real_batches)
                   for g in torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)]
        g_real = g_class if g_real is None else [a + b for a, b in zip(g_real, g_class)]
    assert g_real is not None
    g_syn = torch.autograd.grad(soft_cross_entropy(net(x_syn), targets_syn), params, create_graph=True)
    return gradient_match_distance(g_real, g_syn, metric=metric)


@dataclass(kw_only=True)
class DCCConfig(DCConfig):
    """DCC hyper-parameters: DC's (``outer_loop`` / ``inner_loop`` 0 take DCC's table, :func:`dcc_loop_schedule`)
    and the bi-level warm-up (reference defaults 250 / 10; the reference runs 1000 outer steps)."""

    outer_warmup: int = field(default=250, metadata={
        "help": "outer steps of DC's class-wise matching before the contrastive loss", "range": Range(0)})
    inner_warmup: int = field(default=10, metadata={
        "help": "image updates within an outer step after which the contrastive loss is used even during the "
                "outer warm-up (10 >= the updates per step of IPC 1 and 10: only outer_warmup counts there)",
        "range": Range(0)})


class DCC(DC):
    """Gradient matching with contrastive signals (Lee et al., ICML 2022); DSAC with ``dsa_strategy`` set."""

    config_class = DCCConfig
    paper = "https://arxiv.org/abs/2202.02916"
    shards_classes = False  # the contrastive loss couples the classes: every rank computes all of them

    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:  # type: ignore[override]
        cfg: DCCConfig = self.config  # type: ignore[assignment]
        if cfg.dsa_strategy == "auto":
            cfg.dsa_strategy = default_strategy(data.name)
        super().setup(summary, data, device)
        table_outer, table_inner = dcc_loop_schedule(summary.ipc)
        self.outer_loop = cfg.outer_loop or table_outer
        self.inner_loop = cfg.inner_loop or table_inner
        if cfg.outer_warmup >= cfg.steps and cfg.inner_warmup >= self.outer_loop:
            logger.warning("DCC's warm-up (outer_warmup=%d steps, inner_warmup=%d updates) outlasts this run (%d "
                           "steps of %d updates): the contrastive loss is never used and DCC equals DC; lower "
                           "outer_warmup", cfg.outer_warmup, cfg.inner_warmup, cfg.steps, self.outer_loop)

    def contrastive(self, ctx: StepContext, update: int) -> bool:
        """Whether matching update ``update`` of the current outer step uses the contrastive loss (after warm-up)."""
        cfg: DCCConfig = self.config  # type: ignore[assignment]
        return ctx.step >= cfg.outer_warmup or update >= cfg.inner_warmup

    def matching_loss(self, net: nn.Module, summary: Summary, ctx: StepContext, *, update: int = 0) -> Tensor:
        """DC's class-wise loss during the warm-up, then :func:`contrastive_gradient_match` on the same batches."""
        if not self.contrastive(ctx, update):
            return super().matching_loss(net, summary, ctx, update=update)
        real_batches, x_syn, targets_syn = [], [], []
        for c in range(ctx.data.num_classes):
            x_real, y_real, x_syn_c, targets_c = self.class_batches(c, summary, ctx)
            real_batches.append((x_real, y_real))
            x_syn.append(x_syn_c)
            targets_syn.append(targets_c)
        return contrastive_gradient_match(net, real_batches, torch.cat(x_syn), torch.cat(targets_syn),
                                          metric=self.config.metric)


@dataclass(kw_only=True)
class DSACConfig(DCCConfig):
    """DCC's settings with Siamese augmentation on ("auto": the DSA strategy for the dataset, no flip on digits)."""

    dsa_strategy: str | None = field(default="auto", metadata={
        "help": "Siamese augmentation strategy ('auto': by dataset, no flip on digit datasets)"})


class DSAC(DCC):
    """DCC with differentiable Siamese augmentation (the reference's ``--method DSA --contrast``)."""

    config_class = DSACConfig
