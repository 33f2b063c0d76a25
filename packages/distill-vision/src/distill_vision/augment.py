"""Differentiable Siamese Augmentation (DSA: Zhao & Bilen, ICML 2021, https://arxiv.org/abs/2102.08259).

Every transform is differentiable w.r.t. the images. In Siamese mode (``seed`` given) one transform group of the
strategy is chosen and ONE parameter draw is shared by the whole batch, so the real and the synthetic batch of a
class, augmented with the same seed, see exactly the same transformation. Without a seed (evaluation / inner
training) parameters are drawn per sample. Parameter ranges are the reference's ``ParamDiffAug``
(VICO-UoE/DatasetCondensation utils.py): scale 1.2, rotate 15 degrees, crop/translate 0.125, cutout 0.5, flip 0.5,
brightness 1.0, saturation 2.0, contrast 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from distill_core.errors import UnknownNameError

__all__ = ["DSA", "DSAParams", "MNIST_STRATEGY", "DEFAULT_STRATEGY"]

DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
MNIST_STRATEGY = "color_crop_cutout_scale_rotate"  # no flip on digits (DSA readme)
_GROUPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    ratio_scale: float = 1.2
    ratio_rotate: float = 15.0
    ratio_crop_pad: float = 0.125
    ratio_cutout: float = 0.5
    prob_flip: float = 0.5
    brightness: float = 1.0
    saturation: float = 2.0
    contrast: float = 0.5


class DSA:
    """Apply a DSA strategy (``"color_crop_cutout_flip_scale_rotate"``), one random group per call.

    Args:
        strategy: groups joined by ``_``.
        params: parameter ranges.

    Shapes:
        ``x``: ``(N, C, H, W)`` -> same shape.
    """

    def __init__(self, strategy: str = DEFAULT_STRATEGY, *, params: DSAParams | None = None) -> None:
        groups = [g for g in strategy.split("_") if g]
        for g in groups:
            if g not in _GROUPS:
                raise UnknownNameError("DSA transform", g, _GROUPS)
        if not groups:
            raise ValueError("empty DSA strategy")
        self.strategy = strategy
        self.groups = groups
        self.params = params or DSAParams()

    def __call__(self, x: Tensor, *, seed: int | None = None, generator: torch.Generator | None = None) -> Tensor:
        siamese = seed is not None
        g = torch.Generator().manual_seed(seed) if siamese else generator  # type: ignore[arg-type]
        group = self.groups[int(torch.randint(len(self.groups), (1,), generator=g))]
        n = 1 if siamese else len(x)
        if group == "color":
            x = self._brightness(x, g, n)
            x = self._saturation(x, g, n)
            return self._contrast(x, g, n)
        return getattr(self, f"_{group}")(x, g, n)

    # each transform draws ``n`` parameter sets (1 = shared by the batch) from ``g`` on the CPU
    @staticmethod
    def _uniform(g: torch.Generator | None, n: int, low: float, high: float, like: Tensor) -> Tensor:
        return (torch.rand(n, generator=g) * (high - low) + low).to(like)

    def _affine(self, x: Tensor, theta: Tensor) -> Tensor:
        theta = theta.expand(len(x), 2, 3) if len(theta) == 1 else theta
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)

    def _scale(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        r = self.params.ratio_scale
        sx = self._uniform(g, n, 1 / r, r, x)
        sy = self._uniform(g, n, 1 / r, r, x)
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, zero], -1), torch.stack([zero, sy, zero], -1)], 1)
        return self._affine(x, theta)

    def _rotate(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        angle = self._uniform(g, n, -self.params.ratio_rotate, self.params.ratio_rotate, x) * math.pi / 180
        cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
        theta = torch.stack([torch.stack([cos, sin, zero], -1), torch.stack([-sin, cos, zero], -1)], 1)
        return self._affine(x, theta)

    def _flip(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        flip = (torch.rand(n, generator=g) < self.params.prob_flip).to(x.device).view(-1, 1, 1, 1)
        return torch.where(flip, x.flip(3), x)

    def _crop(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        """Integer translation by up to ``ratio_crop_pad * size`` pixels per axis, zero fill (exact shifts through
        ``grid_sample`` at integer positions, so it stays differentiable in the pixels)."""
        h, w = x.shape[-2:]
        sh, sw = round(h * self.params.ratio_crop_pad), round(w * self.params.ratio_crop_pad)
        dx = torch.randint(-sw, sw + 1, (n,), generator=g).to(x)
        dy = torch.randint(-sh, sh + 1, (n,), generator=g).to(x)
        one, zero = torch.ones_like(dx), torch.zeros_like(dx)
        tx, ty = 2 * dx / max(w - 1, 1), 2 * dy / max(h - 1, 1)
        theta = torch.stack([torch.stack([one, zero, tx], -1), torch.stack([zero, one, ty], -1)], 1)
        return self._affine(x, theta)

    def _cutout(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        """Zero one square of side ``ratio_cutout * size`` whose centre is uniform over the image (clipped)."""
        h, w = x.shape[-2:]
        ch, cw = round(h * self.params.ratio_cutout), round(w * self.params.ratio_cutout)
        top = torch.randint(0, h, (n,), generator=g).to(x.device).view(-1, 1, 1) - ch // 2
        left = torch.randint(0, w, (n,), generator=g).to(x.device).view(-1, 1, 1) - cw // 2
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
        return x * (~inside).to(x.dtype).unsqueeze(1)

    def _brightness(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        b = self._uniform(g, n, -0.5, 0.5, x) * self.params.brightness
        return x + b.view(-1, 1, 1, 1)

    def _saturation(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        s = self._uniform(g, n, 0, 1, x) * self.params.saturation
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * s.view(-1, 1, 1, 1) + mean

    def _contrast(self, x: Tensor, g: torch.Generator | None, n: int) -> Tensor:
        c = self._uniform(g, n, 0, 1, x) + self.params.contrast
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - mean) * c.view(-1, 1, 1, 1) + mean
