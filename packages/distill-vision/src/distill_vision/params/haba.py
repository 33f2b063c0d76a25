"""HaBa: bases and hallucinators (Liu et al., NeurIPS 2022, "Dataset Distillation via Factorization"),
https://arxiv.org/abs/2210.16774.

The stored tensors are ``base_images`` (whole images, some per class) and ``n_style`` small *hallucinators* shared
by all classes; every base passed through every hallucinator is one decoded sample, so ``bases x n_style`` samples per
class. A hallucinator is a 3x3 convolution ``C -> C`` (no padding), a learned per-pixel scale and shift of shape
``C x (H-2) x (W-2)``, and a 3x3 transposed convolution back to ``C x H x W``, as in the reference.

Budget in stored floats (every learned tensor counts, the hallucinators included): ``plan`` charges the
hallucinators first (``2·(9C² + C) + 2·C(H-2)(W-2)`` floats each) and spends the rest on as many whole bases per
class as fit. At the floats of IPC 1 the five hallucinators of the paper leave no room for one base per class on a
28x28 image (they cost 6,860 of the 7,840 floats), so use IPC-10 floats or fewer hallucinators there; the paper
charges only the bases. On 8x8 digits even one hallucinator (46 floats) and ten bases (640) exceed the floats of
IPC 1: HaBa needs ``budget_floats`` (or IPC 2) there.

Adversarial contrastive term (``contrast_weight``, the reference's λ 0.1 on ``club_content``; 0 turns it off), run
through :meth:`~distill_core.parameterized.Parameterization.regularizer` at every summary update: two different
hallucinators ``i, j`` are drawn, and

1. an auxiliary feature extractor (two 3x3 conv-ReLU blocks, a 2x2 adaptive average pool and a linear classifier; SGD
   lr 0.001 as the reference, momentum 0.9) takes one step on the detached pair of hallucinations of every base:
   class cross-entropy on both (``cls``, weight 1) plus an InfoNCE loss in which the two hallucinations of one base
   are the positive pair and the other bases the negatives (``contrast``, weight 0.1 as the scripts, temperature
   0.1): it learns what two hallucinations of a base share;
2. the bases and hallucinators then get ``contrast_weight ·`` the mean cosine similarity of the (frozen) extractor's
   features of the two hallucinations of each base, so they learn to make the hallucinations of a base differ in
   what the extractor sees.

While the hallucinations of a base are equal (at the real initialisation) the cosine similarity is 1, a stationary
point: the term pushes only once the objective has separated the hallucinators. The extractor and its optimizer are
not stored tensors: they are not counted in the stored floats, not written to the artifact (the decoded samples do
not depend on them) and not checkpointed, so a resumed run with ``contrast_weight > 0`` starts a new extractor. The
recorded loss is the objective's; the term's value is not added to it.

Departures from the reference: the decoded set holds every (base, hallucinator) pair instead of one random
hallucinator per base and step (so that every objective sees a fixed set); a hallucinator is residual,
``x + deconv(enc(x)·scale + shift)`` with the transposed convolution starting at zero, so the decoded samples start
as the real bases; the contrastive term drops the reference's CLUB likelihood estimator (``likeli``) and uses the
cosine similarity of the extractor's features in place of its mutual-information bound, and the extractor is ours
(the reference's architecture is not followed); one hallucinator pair per update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.data import ClassIndex, RealData
from distill_core.errors import DataValidationError
from distill_core.parameterized import Parameterization, check_floats, register_parameterization

__all__ = ["Hallucinators"]


def hallucinator_floats(c: int, h: int, w: int) -> int:
    """Floats of one hallucinator on ``C x H x W`` images: two 3x3 convolutions with bias, a scale and a shift."""
    return 2 * (9 * c * c + c) + 2 * c * (h - 2) * (w - 2)


@register_parameterization
class Hallucinators(Parameterization):
    """HaBa: decoded sample = hallucinator(base), for every base and hallucinator."""

    name = "haba"
    DEFAULTS: dict[str, Any] = {"n_style": 5, "contrast_weight": 0.1}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        c, h, w = self.sample_shape
        k = self.layout["n_style"]
        per_class = self.layout["bases_per_class"]
        self.base_images = nn.Parameter(torch.zeros(sum(per_class), c, h, w))
        self.enc_weight = nn.Parameter(torch.zeros(k, c, c, 3, 3))
        self.enc_bias = nn.Parameter(torch.zeros(k, c))
        self.scale = nn.Parameter(torch.ones(k, c, h - 2, w - 2))
        self.shift = nn.Parameter(torch.zeros(k, c, h - 2, w - 2))
        self.dec_weight = nn.Parameter(torch.zeros(k, c, c, 3, 3))
        self.dec_bias = nn.Parameter(torch.zeros(k, c))
        self.register_buffer("base_labels", self.class_labels(per_class))
        self._contrast: _Contrast | None = None  # the extractor, built at the first regularizer() call; not stored
        self._contrast_seed = 0

    @classmethod
    def plan(cls, *, sample_shape: tuple[int, ...], sizes: list[int], floats: int,
             options: dict[str, Any]) -> dict[str, Any]:
        opts = cls.check_options("haba", options, cls.DEFAULTS)
        cls.check_positive_ints(opts, ("n_style",))
        k = opts["n_style"]
        weight = opts["contrast_weight"]
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise DataValidationError(f"haba option 'contrast_weight' must be a number >= 0 (0 turns the adversarial "
                                      f"contrastive term off), got {weight!r}")
        if len(sample_shape) != 3 or sample_shape[1] < 3 or sample_shape[2] < 3:
            raise DataValidationError(f"haba needs images (C, H, W) of at least 3x3, got {tuple(sample_shape)}")
        c, h, w = sample_shape
        styles = k * hallucinator_floats(c, h, w)
        image = c * h * w
        classes = len(sizes)
        check_floats(floats, styles + classes * image, f"{k} hallucinators ({styles} floats) and one base image per "
                     "class")
        per_class = (floats - styles) // (classes * image)
        return {"n_style": k, "contrast_weight": float(weight), "bases_per_class": [per_class] * classes,
                "hallucinator_floats": styles,
                "decoded_per_class": [per_class * k] * classes}

    def init_from(self, data: RealData, *, generator: torch.Generator, noise: bool) -> None:
        c = self.sample_shape[0]
        bound = 1.0 / math.sqrt(9 * c)  # the default init of a 3x3 convolution
        self.enc_weight.data.uniform_(-bound, bound, generator=generator)
        self.enc_bias.data.uniform_(-bound, bound, generator=generator)
        if noise:
            self.base_images.data.normal_(generator=generator)
        else:
            index = ClassIndex(data.y_train, self.num_classes)
            pick = index.sample_sizes(self.layout["bases_per_class"], generator=generator, replace=True)
            self.base_images.data.copy_(data.x_train[pick].float())
        if self.contrast_weight > 0:  # drawn last, so the bases and convolutions are those of weight 0
            self._contrast_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))

    def lr_scales(self) -> dict[str, float]:
        """A hallucinator reads every base: the per-pixel scale and shift take steps divided by the number of bases
        (as LinBa's bank), the convolutions, which also act at every pixel, by the number of bases times pixels, so
        that one step moves a decoded sample about as much as a pixel step moves a base."""
        share = 1.0 / max(1, len(self.base_images))
        conv = share / (self.sample_shape[1] * self.sample_shape[2])
        return {"scale": share, "shift": share, **dict.fromkeys(("enc_weight", "enc_bias", "dec_weight", "dec_bias"),
                                                                conv)}

    def hallucinate(self, x: Tensor, k: int) -> Tensor:
        """Hallucinator ``k`` applied to images ``x`` ``(n, C, H, W)``."""
        inner = F.conv2d(x, self.enc_weight[k], self.enc_bias[k]) * self.scale[k] + self.shift[k]
        return x + F.conv_transpose2d(inner, self.dec_weight[k], self.dec_bias[k])

    def decode(self) -> Tensor:
        """Per base (class-ordered), its ``n_style`` hallucinations: ``(bases·n_style, C, H, W)``."""
        out = torch.stack([self.hallucinate(self.base_images, k) for k in range(self.layout["n_style"])], dim=1)
        return out.flatten(0, 1)

    @property
    def contrast_weight(self) -> float:
        return float(self.layout.get("contrast_weight", 0.0))

    def regularizer(self) -> Tensor | None:
        """HaBa's adversarial contrastive term (see the module docstring): one step of the auxiliary extractor, then
        ``contrast_weight`` x the mean cosine similarity of its features of two hallucinations of every base, or
        ``None`` when the weight is 0 or there is one hallucinator."""
        k = self.layout["n_style"]
        if self.contrast_weight <= 0 or k < 2:
            return None
        state = self._contrast or self._build_contrast()
        i, j = torch.randperm(k, generator=state.generator)[:2].tolist()
        labels = self.base_labels
        x_i, x_j = self.hallucinate(self.base_images, i), self.hallucinate(self.base_images, j)
        feats = state.net(torch.cat([x_i, x_j]).detach())  # the extractor's step does not reach the summary
        fa, fb = F.normalize(feats, dim=1).chunk(2)
        logits = fa @ fb.T / 0.1  # the other bases' hallucinations are the negatives
        target = torch.arange(len(fa), device=fa.device)
        aux_loss = (F.cross_entropy(state.head(feats), torch.cat([labels, labels]))  # type: ignore[list-item]
                    + 0.1 * F.cross_entropy(logits, target))
        state.optimizer.zero_grad(set_to_none=True)
        aux_loss.backward()
        state.optimizer.step()
        for p in state.parameters():
            p.requires_grad_(False)
        try:
            fa, fb = state.net(x_i), state.net(x_j)
        finally:
            for p in state.parameters():
                p.requires_grad_(True)
        return self.contrast_weight * F.cosine_similarity(fa, fb, dim=1).mean()

    def _build_contrast(self) -> _Contrast:
        c = self.sample_shape[0]
        like = self.base_images
        with torch.random.fork_rng(devices=[]):  # the extractor's init neither reads nor moves the global RNG
            torch.manual_seed(self._contrast_seed)
            net = nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                                nn.AdaptiveAvgPool2d(2), nn.Flatten())
            head = nn.Linear(4 * 32, self.num_classes)
        net.to(device=like.device, dtype=like.dtype)
        head.to(device=like.device, dtype=like.dtype)
        optimizer = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.001, momentum=0.9)
        generator = torch.Generator().manual_seed(self._contrast_seed)
        self._contrast = _Contrast(net=net, head=head, optimizer=optimizer, generator=generator)
        return self._contrast

    def bases(self) -> Tensor:
        """The stored base images (each class's, in class order), shown under the decoded samples."""
        return self.base_images.detach()

    def decoded_labels(self) -> Tensor:
        return self.base_labels.repeat_interleave(self.layout["n_style"])  # type: ignore[operator]


@dataclass
class _Contrast:
    """HaBa's auxiliary feature extractor, its classifier and their optimizer: trained state of the regularizer, kept
    out of the parameterization's parameters and buffers so that it is never counted, stored or optimised as part of
    the summary."""

    net: nn.Module
    head: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator

    def parameters(self) -> list[nn.Parameter]:
        return [*self.net.parameters(), *self.head.parameters()]
