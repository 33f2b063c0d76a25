"""DD: Dataset Distillation (Wang, Zhu, Torralba & Efros 2018, https://arxiv.org/abs/1811.10959).

The summary holds ``ipc`` groups of one image per class and one learned, positive inner learning rate
(``Summary(learn_lr=True)``: ``lr = softplus(raw)``). Every outer step a network is freshly initialised (Xavier
normal weights, zero biases: the reference's ``unknown_init``) and trained functionally for
``T = ipc · distill_epochs`` plain gradient-descent steps, cycling over the groups in order; the final weights are
scored by cross-entropy on a real batch and the loss is back-propagated through the unrolled steps into the images
and the learning rate (``distill_core.objectives.unrolled_sgd``; ``truncate`` keeps only the last k steps, TBPTT,
and ``checkpoint`` recomputes steps in the backward pass). Adam with betas (0.5, 0.999) on images and learning
rate (SsnL/dataset-distillation).

Deviations: one learned learning rate shared by all steps (the reference learns one per step); the StepLR decay of
the outer learning rate is not applied. Evaluate with both the native protocol (``EvalProtocol`` with
``use_learned_lr=True``, no momentum, batches of one group) and plain minibatch training (DD's images are tuned to
their own schedule and read very differently under the other):
:func:`native_protocol` builds the former.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from distill_core.evaluation import EvalProtocol, xavier_init_
from distill_core.method import MethodConfig, StepContext
from distill_core.objectives import init_params, unrolled_sgd
from distill_core.synset import Summary

from ._base import VisionMethod

__all__ = ["DD", "DDConfig", "native_protocol", "xavier_init_"]


@dataclass
class DDConfig(MethodConfig):
    """DD hyper-parameters (reference: SsnL/dataset-distillation base_options.py, MNIST defaults)."""

    steps: int = field(default=4000, metadata={"help": "outer iterations (reference: 400 epochs of the training set "
                                                         "in batches of 1024)"})
    optimizer: Literal["sgd", "adam"] = field(default="adam", metadata={"help": "optimizer (Adam, betas 0.5/0.999)"})
    lr_summary: float = field(default=0.01, metadata={"help": "Adam learning rate of the images"})
    init: Literal["real", "noise"] = field(default="noise", metadata={"help": "images start as N(0, 1) noise"})
    learn_lr: bool = field(default=True, metadata={"help": "learn the (positive) inner learning rate"})
    lr_init: float = field(default=0.02, metadata={"help": "initial inner learning rate (distill_lr; CIFAR 0.001)"})
    lr_lr: float = field(default=0.01, metadata={"help": "Adam learning rate of the raw inner learning rate"})
    model: str = field(default="lenet", metadata={"help": "inner network (LeNet for MNIST, ConvNet otherwise)"})
    distill_epochs: int = field(default=3, metadata={"help": "passes over the groups: T = ipc x distill_epochs"})
    truncate: int | None = field(default=None, metadata={
        "help": "back-propagate through the last k inner steps only (TBPTT); None: all (the reference)"})
    checkpoint: bool = field(default=False, metadata={"help": "recompute inner steps in the backward pass"})
    batch_real: int = field(default=1024, metadata={"help": "real images scoring the trained network"})
    betas: tuple[float, float] = field(default=(0.5, 0.999), metadata={"help": "Adam betas"})


def native_protocol(summary: Summary, *, model: str = "lenet", distill_epochs: int = 3, n_models: int = 3,
                    model_kwargs: dict[str, Any] | None = None) -> EvalProtocol:
    """DD's own evaluation: plain gradient descent with the learned learning rate, no momentum or weight decay,
    ``distill_epochs`` passes in batches of one image per class (approximately the reference's fixed step order),
    from DD's Xavier-normal initialisation."""
    return EvalProtocol(model=model, model_kwargs=dict(model_kwargs or {}), epochs=distill_epochs, momentum=0.0,
                        weight_decay=0.0, batch_size=summary.num_classes, schedule="constant", n_models=n_models,
                        use_learned_lr=True, init="xavier")


class DD(VisionMethod[DDConfig]):
    """Dataset distillation by back-propagation through unrolled inner training (Wang et al. 2018)."""

    paper = "https://arxiv.org/abs/1811.10959"
    min_classes = 2  # a cross-entropy over one class is constant: no gradient to learn from

    def make_optimizer(self, summary: Summary) -> torch.optim.Optimizer:
        if self.config.optimizer == "adam":
            return torch.optim.Adam(self.param_groups(summary), betas=tuple(self.config.betas))  # type: ignore[arg-type]
        return super().make_optimizer(summary)

    def groups(self, summary: Summary) -> list[Tensor]:
        """Index groups of one sample per class, in order (group ``g`` = the ``g``-th sample of every class)."""
        per_class = [torch.nonzero(summary.labels == c).flatten() for c in range(summary.num_classes)]
        n_groups = max(len(idx) for idx in per_class)
        return [torch.stack([idx[g % len(idx)] for idx in per_class if len(idx)]) for g in range(n_groups)]

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """Cross-entropy on a uniform real batch of a fresh network trained by unrolled SGD on the summary.

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        cfg = self.config
        net = xavier_init_(ctx.fresh_model(cfg.model))
        params = init_params(net, reinit=False)
        groups = self.groups(summary)
        steps = len(groups) * cfg.distill_epochs
        lr: Tensor | float = summary.lr if summary.lr is not None else cfg.lr_init
        final = unrolled_sgd(net, params, summary.x, summary.labels, steps=steps, lr=lr, loss_fn=F.cross_entropy,
                             truncate=cfg.truncate, checkpoint=cfg.checkpoint,
                             schedule=[groups[t % len(groups)] for t in range(steps)])
        x_real, y_real = ctx.sample_uniform(cfg.batch_real)
        return F.cross_entropy(torch.func.functional_call(net, final, (x_real,)), y_real)
