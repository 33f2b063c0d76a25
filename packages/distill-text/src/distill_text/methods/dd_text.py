"""DD-text: dataset distillation by back-propagation through unrolled training (Wang et al., "Dataset
Distillation", 2018, https://arxiv.org/abs/1811.10959), with learned soft labels for text (Sucholutsky & Schonlau,
"Soft-Label Dataset Distillation and Text Dataset Distillation", IJCNN 2021, https://arxiv.org/abs/1910.02551).

Every outer step draws a learner from a fresh random initialisation (``init_mode="resample"``, DD's
``unknown_init``) or from one fixed initialisation (``init_mode="fixed"``), trains it functionally for ``T`` plain
SGD steps on the summary (embeddings, softmax of the learnable soft labels, learned positive inner learning rate),
scores the final weights by cross-entropy on a class-balanced real batch, and back-propagates through the last
``k`` inner steps (truncated back-propagation through time, core's :func:`~distill_core.objectives.unrolled.
unrolled_sgd`). Adam with betas (0.5, 0.999) updates embeddings, label logits and the raw learning rate
(SsnL/dataset-distillation, text experiments).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from distill_core.data import Budget, RealData
from distill_core.method import StepContext
from distill_core.modality import Modality
from distill_core.objectives import soft_cross_entropy
from distill_core.objectives.unrolled import init_params, unrolled_sgd
from distill_core.synset import Summary

from ._common import TextMethod, UnrolledTextConfig

__all__ = ["DDText", "DDTextConfig", "inner_lr_limit", "soft_cross_entropy"]

logger = logging.getLogger(__name__)


def inner_lr_limit(net: nn.Module, x: Tensor, num_classes: int) -> float:
    """The largest plain-SGD step that is stable on the learner's final linear layer at its initialisation.

    Full-batch gradient descent on a quadratic diverges when ``lr > 2 / lambda_max``. For the cross-entropy of a
    linear layer on features ``f`` (with a bias) at near-uniform predictions, ``lambda_max = lambda_max(G) / K`` with
    ``G = [f, 1] [f, 1]^T / n`` the feature Gram matrix: the Hessian is ``(diag(p) - p p^T) kron G`` and
    ``diag(p) - p p^T`` has largest eigenvalue ``1 / K`` at ``p = 1 / K``. The other layers only add curvature, so
    this is an upper bound on the stable inner learning rate.

    Why it matters: max-over-time pooled ReLU features of long sequences share a large positive common mode (fresh
    TextCNN, IMDB at L=128: squared norm ~650, cosine ~0.97 between reviews), so ``2 / lambda_max`` falls to ~0.006
    for two classes, below the 0.02 that works on short sentences; above it the inner loop oscillates and the
    meta-gradient is noise.

    Shapes:
        x: the learner's input ``(n, L, d + 1)``; ``net`` must have ``embed(x) -> (n, features)``.
    """
    with torch.no_grad():
        feats = net.embed(x).float()
        feats = torch.cat([feats, feats.new_ones(len(feats), 1)], dim=1)
        top = torch.linalg.eigvalsh(feats @ feats.T / len(feats)).max()
    return float(2.0 * num_classes / top)


@dataclass
class DDTextConfig(UnrolledTextConfig):
    """DD-text hyper-parameters. Paper values where they exist (Wang 2018: Adam lr 0.01 betas (0.5, 0.999), 10
    distill steps, unknown init; Sucholutsky & Schonlau: learnable soft labels, a TextCNN learner); step counts
    CPU-sized.

    Departures from the papers: the default inner learner is the L2-normalised mean-pooled linear model with
    initial inner lr 3, about 10x cheaper per outer step than a TextCNN learner (``learner="textcnn"``,
    ``lr_init=0.02``, ``batch_real=64``); one learned inner lr shared by all steps, and ``T = 10``; the raw learned
    lr moves with Adam lr 1e-3 (Wang's 0.01 let it drift upwards); 300 outer steps. Labels are learnable soft
    logits (Sucholutsky & Schonlau; ``label_kind="hard"``: Wang's fixed classes); Wang starts from noise
    (``init="noise"``). Measurements: benchmarks/text/results.md."""

    defaults = {"steps": 300, "lr_lr": 0.001}
    lr_init: float = field(default=3.0, metadata={
        "help": "initial inner learning rate (textcnn: 0.02 on short sentences; keep it below inner_lr_limit, which "
                "falls with the sequence length: ~0.007 for IMDB at L=128; a warning names it)"})
    truncate: int = field(default=0, metadata={"help": "k: back-propagate through the last k inner steps (0: all T)"})
    inner_batch: int = field(default=0, metadata={"help": "inner minibatch size (0: the whole summary each step)"})
    n_inits: int = field(default=1, metadata={"help": "learner initialisations averaged per outer step"})
    init_mode: Literal["resample", "fixed"] = field(default="resample", metadata={
        "help": "resample: a fresh learner init every outer step (trains fresh models); fixed: one init"})
    init_seed: int = field(default=0, metadata={"help": "the seed of the fixed initialisation"})


class DDText(TextMethod[DDTextConfig]):
    """Dataset distillation through T unrolled SGD steps with TBPTT, soft labels and a learned lr (Wang 2018)."""

    paper = "https://arxiv.org/abs/1910.02551"

    def init_summary(self, data: RealData, *, budget: Budget, modality: Modality,
                     generator: torch.Generator) -> Summary:
        summary = super().init_summary(data, budget=budget, modality=modality, generator=generator)
        summary.native_model = self.config.learner  # type: ignore[attr-defined]
        summary.native_steps = self.config.inner_steps  # type: ignore[attr-defined]
        summary.native_kwargs = self._learner_kwargs()  # type: ignore[attr-defined]
        self._check_inner_lr(summary, data, modality)
        if self.config.inner_batch:
            logger.warning("inner_batch=%d: the native protocol trains full-batch; it only matches the inner loop "
                           "when inner_batch is 0", self.config.inner_batch)
        return summary

    def _check_inner_lr(self, summary: Summary, data: RealData, modality: Modality) -> None:
        """Warn when the initial inner lr is above the inner loop's stability limit (:func:`inner_lr_limit`)."""
        net = modality.build_model(self.config.learner, sample_shape=data.sample_shape,
                                   num_classes=data.num_classes, **self._learner_kwargs())
        if not hasattr(net, "embed"):
            return
        limit = inner_lr_limit(net, summary.x.detach(), data.num_classes)
        # 2x: just above the limit the first steps only overshoot into confident predictions, where the curvature
        # is lower (the meanpool learner's lr 3 sits ~1.4x above it and learns well)
        if self.config.lr_init > 2 * limit:
            logger.warning("lr_init=%.3g is %.1fx the inner loop's stability limit %.3g for the %s learner on this "
                           "summary (2 K / lambda_max of its last layer): the inner SGD steps oscillate and the "
                           "meta-gradient is noise; pass lr_init near %.3g", self.config.lr_init,
                           self.config.lr_init / limit, limit, self.config.learner, limit / 2)

    def _learner_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dropout": 0.0}
        if self.config.init_mode == "fixed":
            kwargs["init_seed"] = self.config.init_seed
        return kwargs

    def make_optimizer(self, summary: Summary) -> torch.optim.Optimizer:
        if self.config.optimizer == "adam":
            return torch.optim.Adam(self.param_groups(summary), betas=(0.5, 0.999))
        return super().make_optimizer(summary)

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """Real-batch cross-entropy of learners trained ``T`` inner steps on the summary (mean over inits).

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        cfg = self.config
        lr = summary.lr if summary.lr is not None else cfg.lr_init
        targets = summary.targets()
        per_class = max(1, cfg.batch_real // summary.num_classes)
        total = summary.x.new_zeros(())
        for _ in range(cfg.n_inits):
            net = ctx.fresh_model(cfg.learner, **self._learner_kwargs())
            params = init_params(net, reinit=False)
            final = unrolled_sgd(net, params, summary.x, targets, steps=cfg.inner_steps, lr=lr,
                                 loss_fn=soft_cross_entropy, batch_size=cfg.inner_batch or None,
                                 truncate=cfg.truncate or None, checkpoint=cfg.checkpoint, generator=ctx.generator)
            bad = [name for name, p in final.items() if not torch.isfinite(p).all()]
            if bad:
                raise FloatingPointError(f"the inner loop's weights {bad[:3]} became non-finite (inner lr "
                                         f"{float(torch.as_tensor(lr).detach()):.3g}); lower lr_init or lr_lr")
            x_real, y_real = ctx.sample_real_balanced(per_class)
            total = total + F.cross_entropy(functional_call(net, final, (x_real,)), y_real)
        return total / cfg.n_inits
