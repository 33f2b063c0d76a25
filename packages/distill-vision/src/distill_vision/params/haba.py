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
charges only the bases.

Departures from the reference: the decoded set holds every (base, hallucinator) pair instead of one random
hallucinator per base and step (so that every objective sees a fixed set); a hallucinator is residual,
``x + deconv(enc(x)·scale + shift)`` with the transposed convolution starting at zero, so the decoded samples start
as the real bases; HaBa's adversarial contrastive loss (an auxiliary feature extractor that tells hallucinations of
one base apart) is not applied.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.data import RealData
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
    DEFAULTS: dict[str, Any] = {"n_style": 5}

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
        labels = torch.repeat_interleave(torch.arange(self.num_classes), torch.tensor(per_class))
        self.register_buffer("base_labels", labels)

    @classmethod
    def plan(cls, *, sample_shape: tuple[int, ...], sizes: list[int], floats: int,
             options: dict[str, Any]) -> dict[str, Any]:
        opts = cls.check_options("haba", options, cls.DEFAULTS)
        k = opts["n_style"]
        if not isinstance(k, int) or k < 1:
            raise DataValidationError(f"haba option 'n_style' must be an integer >= 1, got {k!r}")
        if len(sample_shape) != 3 or sample_shape[1] < 3 or sample_shape[2] < 3:
            raise DataValidationError(f"haba needs images (C, H, W) of at least 3x3, got {tuple(sample_shape)}")
        c, h, w = sample_shape
        styles = k * hallucinator_floats(c, h, w)
        image = c * h * w
        classes = len(sizes)
        check_floats(floats, styles + classes * image, f"{k} hallucinators ({styles} floats) and one base image per "
                     "class")
        per_class = (floats - styles) // (classes * image)
        return {"n_style": k, "bases_per_class": [per_class] * classes, "hallucinator_floats": styles,
                "decoded_per_class": [per_class * k] * classes}

    def init_from(self, data: RealData, *, generator: torch.Generator, noise: bool) -> None:
        c = self.sample_shape[0]
        bound = 1.0 / math.sqrt(9 * c)  # the default init of a 3x3 convolution
        self.enc_weight.data.uniform_(-bound, bound, generator=generator)
        self.enc_bias.data.uniform_(-bound, bound, generator=generator)
        if noise:
            self.base_images.data.normal_(generator=generator)
            return
        rows = []
        for cls_, m in enumerate(self.layout["bases_per_class"]):
            pool = torch.nonzero(data.y_train == cls_).flatten()
            rows.append(pool[torch.randperm(len(pool), generator=generator)[:m]])
        self.base_images.data.copy_(data.x_train[torch.cat(rows)].float())

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

    def bases(self) -> Tensor:
        """The stored base images (each class's, in class order), shown under the decoded samples."""
        return self.base_images.detach()

    def decoded_labels(self) -> Tensor:
        return self.base_labels.repeat_interleave(self.layout["n_style"])  # type: ignore[operator]
