"""Dataset Condensation with Distribution Matching (DM: Zhao & Bilen, WACV 2023, https://arxiv.org/abs/2110.04181).

Every outer iteration samples a freshly initialised ConvNet whose parameters are frozen; for each class, a real
batch and the class's synthetic images are augmented with the same Siamese DSA draw and embedded, and the loss adds
the squared distance between the mean embeddings (VICO-UoE/DatasetCondensation ``main_DM.py``). The real branch runs
without autograd (``torch.inference_mode``) in chunks, with the norm-ReLU-pool blocks compiled into one loop
(:mod:`distill_vision.fused`), which is where the speed of this implementation comes from.

With a BatchNorm network (``model="convnet-bn"``) the reference embeds all classes' real batches in one forward
pass and all synthetic images in another, so that the normalisation statistics are those of a batch over every
class (a per-class or chunked forward would normalise each class by its own statistics); DM does the same there,
and then computes every class on every process (no class sharding under ``torch.distributed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from distill_core.data import RealData
from distill_core.method import StepContext
from distill_core.objectives import classwise_mean_embedding_distance
from distill_core.objectives.distribution_matching import DistributionMatchingConfig
from distill_core.synset import Summary

from ..augment import DSA
from ..fused import fused_available, fused_embed
from ..modality import default_strategy
from ..models import check_architecture_defaults, has_batchnorm
from ._base import VisionMethod

__all__ = ["DM", "DMConfig", "joint_class_means"]


def joint_class_means(net: nn.Module, batches: list[Tensor]) -> Tensor:
    """The mean embedding of each batch, all batches embedded in **one** forward pass (BatchNorm statistics over
    their union, as the reference's ``ConvNetBN`` branch of ``main_DM.py``).

    Shapes:
        batches: ``k`` tensors ``(n_i, *sample_shape)``; returns ``(k, d)``.
    """
    emb = net.embed(torch.cat(batches))  # type: ignore[operator]
    return torch.stack([e.mean(0) for e in emb.split([len(b) for b in batches])])


@dataclass
class DMConfig(DistributionMatchingConfig):
    """DM hyper-parameters: the reference's defaults (20,000 iterations (Iteration), image lr 1.0 (lr_img), momentum
    0.5, 256 real per class: :class:`~distill_core.objectives.distribution_matching.DistributionMatchingConfig`)."""

    model: str = field(default="convnet", metadata={"help": "embedding network (frozen, re-drawn every step)"})
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. {\"width\": 64}"})
    dsa_strategy: str | None = field(default="auto", metadata={
        "help": "Siamese augmentation strategy ('auto': by dataset, None: off)"})
    real_chunk: int = field(default=256, metadata={"help": "real images per forward pass (cache-friendly chunks)"})
    channels_last: bool | None = field(default=None, metadata={
        "help": "channels-last memory format (None: on for images >= 16 px, where its faster convolutions win; on "
                "8x8 digits its slower GroupNorm loses)"})
    fused_real: bool | None = field(default=None, metadata={
        "help": "run the real branch's norm-ReLU-pool blocks compiled (distill_vision.fused; None: on for images "
                ">= 16 px when torch.compile works here, else eager)"})


class DM(VisionMethod[DMConfig]):
    """Distribution matching of random-network embeddings (Zhao & Bilen, WACV 2023)."""

    paper = "https://arxiv.org/abs/2110.04181"
    shards_classes = True

    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:
        check_architecture_defaults(self.config.model, lr_images=self.config.lr_summary, reference_key="dm_lr_images")
        if self.config.dsa_strategy == "auto":
            self.config.dsa_strategy = default_strategy(data.name)
        self.dsa = DSA(self.config.dsa_strategy) if self.config.dsa_strategy else None
        large = data.sample_shape[-1] >= 16  # where channels-last convolutions and the fused blocks pay off
        channels_last = large if self.config.channels_last is None else self.config.channels_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        fused = large and self.config.model == "convnet" if self.config.fused_real is None else self.config.fused_real
        self.fused = fused and fused_available()

    def _augment(self, x: Tensor, seed: int) -> Tensor:
        return x if self.dsa is None else self.dsa(x, seed=seed)

    def embedder(self, ctx: StepContext) -> nn.Module:
        net = ctx.fresh_model(self.config.model, **self.config.model_kwargs).to(memory_format=self.memory_format)
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    @torch.inference_mode()
    def real_mean_embedding(self, net: nn.Module, x_real: Tensor, seed: int) -> Tensor:
        """Mean embedding of a Siamese-augmented real batch, without autograd, in chunks."""
        total = None
        for start in range(0, len(x_real), self.config.real_chunk):
            chunk = self._augment_chunk(x_real, start, seed)
            chunk = chunk.contiguous(memory_format=self.memory_format)
            emb = (fused_embed(net, chunk) if self.fused else net.embed(chunk)).sum(0)  # type: ignore[operator]
            total = emb if total is None else total + emb
        assert total is not None
        return (total / len(x_real)).clone()

    def _augment_chunk(self, x_real: Tensor, start: int, seed: int) -> Tensor:
        # one Siamese draw for the whole class batch: parameters depend only on the seed, not on the chunk
        return self._augment(x_real[start:start + self.config.real_chunk], seed)

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """Sum over classes of the squared distance between real and synthetic mean embeddings of a fresh network.

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        net = self.embedder(ctx)
        if has_batchnorm(net):
            self.shards_classes = False  # type: ignore[misc]  # BatchNorm statistics come from every class at once
            return self._joint_loss(summary, ctx, net)
        real_means, e_syn, y_syn = [], [], []
        classes = ctx.classes()  # all classes, or this process's share under torch.distributed
        if not classes:  # more processes than classes: this one contributes nothing
            return summary.x.sum() * 0.0
        for c in classes:
            rng = ctx.class_generator(c)  # keyed by (seed, step, class): the same draws in any process layout
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng))  # one Siamese draw for real and synthetic
            real = ctx.sample_real(c, self.config.batch_real, generator=rng)
            real_means.append(self.real_mean_embedding(net, real, seed))
            x_syn = self._augment(summary.x[summary.class_mask(c)], seed)
            e_syn.append(net.embed(x_syn.contiguous(memory_format=self.memory_format)))  # type: ignore[operator]
            y_syn.append(torch.full((len(x_syn),), c, device=x_syn.device))
        # the real side enters as one mean row per class (computed in chunks without autograd): its mean is itself
        y_real = torch.tensor(classes, device=summary.x.device)
        return classwise_mean_embedding_distance(torch.stack(real_means), y_real, torch.cat(e_syn), torch.cat(y_syn),
                                                 ctx.data.num_classes)

    def _joint_loss(self, summary: Summary, ctx: StepContext, net: nn.Module) -> Tensor:
        """DM's loss with one forward over every class's real batch and one over every synthetic image (BatchNorm
        networks; the draws are those of the class-wise path)."""
        reals, syns, classes = [], [], []
        for c in range(ctx.data.num_classes):
            mask = summary.class_mask(c)
            if not bool(mask.any()):
                continue
            rng = ctx.class_generator(c)
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=rng))
            reals.append(self._augment(ctx.sample_real(c, self.config.batch_real, generator=rng), seed))
            syns.append(self._augment(summary.x[mask], seed).contiguous(memory_format=self.memory_format))
            classes.append(c)
        with torch.no_grad():
            real_means = joint_class_means(net, [r.contiguous(memory_format=self.memory_format) for r in reals])
        syn_means = joint_class_means(net, syns)
        y = torch.tensor(classes, device=summary.x.device)  # one mean row per class on each side
        return classwise_mean_embedding_distance(real_means, y, syn_means, y, ctx.data.num_classes)
