"""Gradient matching over token-embedding sequences (DC: Zhao, Mopuri & Bilen, ICLR 2021,
https://arxiv.org/abs/2006.05929), applied to text in the continuous embedding view.

Every outer iteration draws a freshly initialised learner; for ``outer_loop`` rounds, for each class, the gradient
of the cross-entropy w.r.t. the learner's parameters on a real batch of the class (detached) is matched with the
gradient on the class's synthetic sequences (with graph) by DC's layer-wise distance; one optimizer step on the
summary follows each round, and between rounds the learner is trained ``inner_loop`` epochs on the summary. The
loop counts follow DC's reference table by samples per class (VICO-UoE/DatasetCondensation ``get_loops``).

Under ``torch.distributed`` (``torchrun``) the classes are shared over the processes (``shards_classes``): every
rank draws every class's real batch from the step's generator (the draws of one process) and matches its own
classes; the summary's gradient is summed over the ranks before each update, and the learner's training between
rounds runs alike on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from distill_core.method import StepContext
from distill_core.objectives import classwise_gradient_match, loop_schedule, soft_cross_entropy, train_on_summary
from distill_core.objectives.gradient_matching import GradientMatchingConfig
from distill_core.synset import Summary

from ._common import TextMethod

__all__ = ["TextGM", "TextGMConfig"]

@dataclass
class TextGMConfig(GradientMatchingConfig):
    """DC hyper-parameters (paper: 1,000 iterations, SGD lr 0.1 momentum 0.5 on the samples, network lr 0.01,
    256 real samples per class; outer/inner loops by samples per class: DC's loop options, shared with the image
    methods). CPU-sized defaults: 200 outer steps, 64 real sequences per class and round (paper: 256).

    Departures from the paper: the default learner is the mean-pooled linear model (``model="textcnn"`` for DC's
    kind of network) and the sample learning rate is 100 (the paper's 0.1 is on pixels), because DC's layer-wise
    cosine distance gives tiny gradients w.r.t. unit-scale embeddings; the measurements behind both are in
    benchmarks/text/results.md."""

    defaults = {"steps": 200, "lr_summary": 100.0, "batch_real": 64}
    model: str = field(default="meanpool", metadata={"help": "learner whose gradients are matched"})


class TextGM(TextMethod[TextGMConfig]):
    """Gradient matching (DC) of a fresh learner's gradients on real and synthetic token sequences."""

    paper = "https://arxiv.org/abs/2006.05929"
    shards_classes = True

    def loops(self, ipc: int) -> tuple[int, int]:
        """``(outer_loop, inner_loop)``: the config's values, else DC's table entry nearest ``ipc``."""
        outer, inner = loop_schedule(ipc)
        return self.config.outer_loop or outer, self.config.inner_loop or inner

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        cfg = self.config
        net = ctx.fresh_model(cfg.model, dropout=0.0)
        net.train()
        net_opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=cfg.lr_net)
        outer, inner = self.loops(summary.ipc)

        draws: dict[int, torch.Tensor] = {}

        def class_losses(c: int) -> tuple[torch.Tensor, torch.Tensor]:
            x_real = ctx.data.x_train[draws[c]].to(ctx.device, non_blocking=True)
            y_real = torch.full((len(x_real),), c, dtype=torch.long, device=x_real.device)
            mask = summary.class_mask(c)
            return (F.cross_entropy(net(x_real), y_real),
                    soft_cross_entropy(net(summary.x[mask]), summary.targets()[mask]))

        losses = []
        for round_ in range(outer):
            # every class's real batch drawn in class order (one process's draws); this process's classes matched
            draws = ctx.class_indices(cfg.batch_real)
            loss = classwise_gradient_match(net, sorted(draws), class_losses, metric=cfg.metric)
            losses.append(ctx.update(loss))
            if round_ == outer - 1:
                break
            x_syn, t_syn = summary.materialize()
            train_on_summary(net, x_syn, t_syn, epochs=inner, batch_size=cfg.batch_train, optimizer=net_opt,
                             generator=ctx.generator)
        return sum(losses) / len(losses)
