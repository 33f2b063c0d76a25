"""Dataset Condensation with Gradient Matching (DC: Zhao, Mopuri & Bilen, ICLR 2021,
https://arxiv.org/abs/2006.05929).

Algorithm 1 of the paper, with the reference implementation's settings (VICO-UoE/DatasetCondensation ``main.py``):
every outer iteration draws a freshly initialised network; then ``outer_loop`` times: for every class, the
layer-wise cosine distance between the gradient of the loss on a real batch of the class (detached) and on the
class's synthetic images is summed over classes and minimised by one SGD step on the images; between those steps
the network is trained for ``inner_loop`` epochs on the current synthetic set.

Under ``torch.distributed`` (``torchrun``) the classes are shared over the processes (``shards_classes``): every
rank draws every class's augmentation seed and real indices from the step's generator, in class order, as one
process does, but gathers, augments and differentiates only its own classes; the summary's gradient is summed over
the ranks before each image update. The inner network training between updates is the same computation on every
rank (same network, full summary, same generator), so the networks stay equal and the run equals the one-process
run up to the order of float sums.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.method import Range, StepContext
from distill_core.objectives import classwise_gradient_match, loop_schedule, soft_cross_entropy, train_on_summary
from distill_core.objectives.gradient_matching import GradientMatchingConfig
from distill_core.synset import Summary

from ..augment import DSA
from ..models import check_architecture_defaults, has_batchnorm
from ._base import VisionMethod

__all__ = ["DC", "DCConfig", "loop_schedule"]

@dataclass
class DCConfig(GradientMatchingConfig):
    """DC hyper-parameters (reference defaults: 1,000 iterations, SGD lr_img 0.1 (0.01 for an MLP) with momentum 0.5
    on the images; the loop options are :class:`~distill_core.objectives.gradient_matching.GradientMatchingConfig`).
    ``init`` is "real" as in the DSA readme's commands (the DC code default is "noise"; pass ``--set init=noise`` to
    follow it)."""

    model: str = field(default="convnet", metadata={"help": "network whose gradients are matched"})
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. {\"width\": 64}"})
    bn_batch_per_class: int = field(default=16, metadata={
        "range": Range(1),
        "help": "BatchNorm networks only: real samples per class of the forward that sets the running statistics "
                "before each matching update, which then stay frozen (reference: BNSizePC 16)"})
    dsa_strategy: str | None = field(default=None, metadata={"help": "Siamese augmentation (None: DC)"})


class DC(VisionMethod[DCConfig]):
    """Gradient matching (Zhao et al., ICLR 2021)."""

    paper = "https://arxiv.org/abs/2006.05929"
    min_classes = 2  # a cross-entropy over one class is constant: no gradient to learn from
    shards_classes = True

    def setup(self, summary: Summary, data: object, device: torch.device) -> None:
        check_architecture_defaults(self.config.model, lr_images=self.config.lr_summary)
        table_outer, table_inner = loop_schedule(summary.ipc)
        self.outer_loop = self.config.outer_loop or table_outer
        self.inner_loop = self.config.inner_loop or table_inner
        self.dsa = DSA(self.config.dsa_strategy) if self.config.dsa_strategy else None

    def _augment(self, x: Tensor, seed: int) -> Tensor:
        return x if self.dsa is None else self.dsa(x, seed=seed)

    def class_draws(self, ctx: StepContext) -> dict[int, tuple[int, Tensor]]:
        """One matching update's draws for the classes this process computes (:meth:`StepContext.classes`):
        ``c -> (augmentation seed, indices of the real batch)``. Every class is drawn, in class order, from the
        step's generator whatever the share, so the draws (and the generator's state afterwards, which the inner
        training reads) are those of one process."""
        mine = set(ctx.classes())
        draws: dict[int, tuple[int, Tensor]] = {}
        for c in range(ctx.data.num_classes):
            seed = ctx.new_seed()
            idx = ctx.class_index.sample(c, self.config.batch_real, generator=ctx.generator)
            if c in mine:
                draws[c] = (seed, idx)
        return draws

    def class_batches(self, c: int, summary: Summary, ctx: StepContext, *,
                      draw: tuple[int, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Class ``c``'s matching batches, augmented with one Siamese draw when DSA is on.

        Args:
            draw: the class's ``(augmentation seed, real indices)`` from :meth:`class_draws`; ``None``: drawn here
                from the step's generator (the same numbers when classes are visited in order).

        Returns:
            ``(x_real, y_real, x_syn, targets_syn)``: ``batch_real`` real samples of the class and their labels, the
            class's synthetic samples (differentiable in the summary) and their label rows.

        Shapes:
            x_real: ``(batch_real, *sample_shape)``; y_real: ``(batch_real,)``; x_syn: ``(n_c, *sample_shape)``;
            targets_syn: ``(n_c, num_classes)``.
        """
        if draw is None:
            seed = ctx.new_seed()  # one Siamese augmentation draw shared by the real and the synthetic images
            x_real = ctx.sample_real(c, self.config.batch_real)
        else:
            seed, idx = draw
            x_real = ctx.data.x_train[idx].to(ctx.device, non_blocking=True)
        x_real = self._augment(x_real, seed)
        y_real = torch.full((len(x_real),), c, device=ctx.device)
        mask = summary.class_mask(c)
        return x_real, y_real, self._augment(summary.x[mask], seed), summary.targets()[mask]

    def matching_loss(self, net: nn.Module, summary: Summary, ctx: StepContext, *, update: int = 0) -> Tensor:
        """Sum over classes of the gradient distance between a real batch and the class's synthetic images.

        Args:
            update: the index of this matching update within the outer step (DC's loss does not depend on it;
                DCC's warm-up does).
        """

        draws = self.class_draws(ctx)  # this process's classes (all of them without torch.distributed)

        def class_losses(c: int) -> tuple[Tensor, Tensor]:
            x_real, y_real, x_syn, targets_syn = self.class_batches(c, summary, ctx, draw=draws[c])
            return F.cross_entropy(net(x_real), y_real), soft_cross_entropy(net(x_syn), targets_syn)

        if not draws:  # more processes than classes: this one adds nothing to the summed gradient
            return summary.x.sum() * 0.0
        return classwise_gradient_match(net, sorted(draws), class_losses, metric=self.config.metric)

    def train_inner(self, net: nn.Module, summary: Summary, ctx: StepContext, optimizer: torch.optim.Optimizer) -> None:
        """``inner_loop`` epochs of SGD on the current synthetic set (non-Siamese DSA when enabled); the same
        computation on every rank under torch.distributed (full summary, the step's generator)."""
        x_syn, targets = summary.materialize()
        augment = None if self.dsa is None else (lambda xb: self.dsa(xb, generator=ctx.generator))  # type: ignore[misc]
        train_on_summary(net, x_syn, targets, epochs=self.inner_loop, batch_size=self.config.batch_train,
                         optimizer=optimizer, generator=ctx.generator, augment=augment)

    def freeze_batchnorm(self, net: nn.Module, ctx: StepContext) -> None:
        """The reference's BatchNorm handling before each matching update (``main.py``): one forward in training
        mode over ``bn_batch_per_class`` real samples of every class updates the running statistics, then every
        BatchNorm layer is put in eval mode, so that the per-class batches (one synthetic image at IPC 1) are
        normalised by statistics of all classes rather than by their own. The draws come from the step's generator,
        alike on every rank."""
        x = torch.cat([ctx.sample_real(c, self.config.bn_batch_per_class) for c in range(ctx.data.num_classes)])
        net.train()
        with torch.no_grad():
            net(x)
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        net = ctx.fresh_model(self.config.model, **self.config.model_kwargs).train()
        batchnorm = has_batchnorm(net)
        net_opt = torch.optim.SGD(net.parameters(), lr=self.config.lr_net)
        total = 0.0
        for ol in range(self.outer_loop):
            if batchnorm:
                self.freeze_batchnorm(net, ctx)
            total += ctx.update(self.matching_loss(net, summary, ctx, update=ol))
            if ol == self.outer_loop - 1:
                break
            net.train()  # the inner epochs train BatchNorm layers too (the reference's epoch('train', ...))
            self.train_inner(net, summary, ctx, net_opt)
        return total / self.outer_loop
