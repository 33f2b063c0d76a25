"""Distribution matching over token-embedding sequences (DM: Zhao & Bilen, WACV 2023,
https://arxiv.org/abs/2110.04181), applied to text as in the survey's continuous view of it.

Every outer iteration draws a freshly initialised learner (TextCNN by default) whose parameters are frozen; for each
class, a real batch and the class's synthetic sequences are embedded (the pooled features before the classifier)
and the loss adds the squared distance between the mean embeddings. No augmentation (DSA has no text analogue).

Under ``torch.distributed`` (``torchrun``) the classes are shared over the processes (``shards_classes``): every
rank draws every class's real batch from the step's generator (the draws of one process) and embeds its own
classes; the summary's gradient is summed over the ranks before the update.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from distill_core.method import StepContext
from distill_core.objectives import classwise_mean_embedding_distance
from distill_core.objectives.distribution_matching import DistributionMatchingConfig
from distill_core.synset import Summary

from ._common import TextMethod

__all__ = ["TextDM", "TextDMConfig"]


@dataclass
class TextDMConfig(DistributionMatchingConfig):
    """DM hyper-parameters (paper: 20,000 iterations, SGD lr 1.0 momentum 0.5 on the samples, 256 real samples
    per class and step; the step default here is CPU-sized).

    Departures from the paper: the default embedder is the mean-pooled bag of embeddings (no random weights, so DM
    reduces to matching class means of the embeddings; a random TextCNN embedder, ``model="textcnn"``, did worse
    than random real sentences), and the sample learning rate is 10 (paper 1.0 on pixels), since matching means of
    normalised features moves unit-scale embeddings slowly. Measurements: benchmarks/text/results.md."""

    defaults = {"steps": 200, "lr_summary": 10.0}
    model: str = field(default="meanpool", metadata={"help": "embedding network (frozen, re-drawn every step)"})


class TextDM(TextMethod[TextDMConfig]):
    """Distribution matching of random-learner embeddings of token sequences (Zhao & Bilen, WACV 2023)."""

    paper = "https://arxiv.org/abs/2110.04181"
    shards_classes = True

    def embedder(self, ctx: StepContext) -> nn.Module:
        net = ctx.fresh_model(self.config.model)
        for p in net.parameters():
            p.requires_grad_(False)
        return net.eval()

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """Sum over classes of ``||mean f(x_real_c) - mean f(x_syn_c)||^2`` for a fresh random learner ``f``.

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        net = self.embedder(ctx)
        e_real, y_real, e_syn, y_syn = [], [], [], []
        # per class, as the reference draws its real batches; under torch.distributed this process's classes
        for c, idx in ctx.class_indices(self.config.batch_real).items():
            x_real = ctx.data.x_train[idx].to(ctx.device, non_blocking=True)
            with torch.no_grad():
                e_real.append(net.embed(x_real))  # type: ignore[operator]
            e_syn.append(net.embed(summary.x[summary.class_mask(c)]))  # type: ignore[operator]
            y_real.append(torch.full((len(x_real),), c, device=x_real.device))
            y_syn.append(torch.full((len(e_syn[-1]),), c, device=x_real.device))
        return classwise_mean_embedding_distance(torch.cat(e_real), torch.cat(y_real), torch.cat(e_syn),
                                                 torch.cat(y_syn), summary.num_classes)
