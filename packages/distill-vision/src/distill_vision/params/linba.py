"""LinBa: shared bases and per-sample addressing coefficients (Deng & Russakovsky, NeurIPS 2022, "Remember the
Past: Distilling Datasets into Addressable Memories for Neural Networks", https://arxiv.org/abs/2206.02916).

A sample is its coefficient row times a bank of ``n_bases`` shared bases, at ``1/downsample`` resolution and
upsampled (bilinear) to the image size. Budget as the reference's ``cal_ncoef``: the bases cost
``n_bases · C·H·W / downsample²`` floats and the rest of the budget buys coefficient rows, ``(floats - bases) /
(classes · n_bases)`` decoded samples per class. The reference's CIFAR-10 IPC 1 example: 16 bases, downsample 2.

Initialisation (the reference starts from random values): the bases are the top right-singular vectors of the
downsampled real samples the coefficient rows start from, and each row is its sample's projection on them, so the
first decoded samples are the real samples' rank-``n_bases`` approximations. Departure: the reference's L2 penalty
on the coefficients (1e-4) is not applied.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from distill_core.data import ClassIndex, RealData
from distill_core.errors import DataValidationError
from distill_core.parameterized import Parameterization, check_floats, register_parameterization, upsample

__all__ = ["LinearBases"]


@register_parameterization
class LinearBases(Parameterization):
    """LinBa: decoded sample = coefficients @ shared bases, upsampled."""

    name = "linba"
    DEFAULTS: dict[str, Any] = {"n_bases": 16, "downsample": 2}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        k, small = self.layout["n_bases"], self.layout["small_shape"]
        per_class = self.layout["decoded_per_class"]
        self.bank = nn.Parameter(torch.zeros(k, math.prod(small)))
        self.coefficients = nn.Parameter(torch.zeros(sum(per_class), k))
        self.register_buffer("labels_", self.class_labels(per_class))

    @classmethod
    def plan(cls, *, sample_shape: tuple[int, ...], sizes: list[int], floats: int,
             options: dict[str, Any]) -> dict[str, Any]:
        opts = cls.check_options("linba", options, cls.DEFAULTS)
        k, ds = opts["n_bases"], opts["downsample"]
        cls.check_positive_ints(opts, ("n_bases", "downsample"))
        if len(sample_shape) != 3 or sample_shape[1] % ds or sample_shape[2] % ds:
            raise DataValidationError(f"linba needs images (C, H, W) with H and W divisible by downsample {ds}, got "
                                      f"{tuple(sample_shape)}")
        small = [sample_shape[0], sample_shape[1] // ds, sample_shape[2] // ds]
        classes = len(sizes)
        bank = k * math.prod(small)
        check_floats(floats, bank + classes * k, f"{k} bases of {math.prod(small)} floats and one coefficient row "
                     "per class")
        per_class = (floats - bank) // (classes * k)
        return {"n_bases": k, "downsample": ds, "small_shape": small, "decoded_per_class": [per_class] * classes}

    def init_from(self, data: RealData, *, generator: torch.Generator, noise: bool) -> None:
        k = self.layout["n_bases"]
        if noise:
            self.bank.data.normal_(generator=generator).div_(math.sqrt(self.bank.shape[1]))
            self.coefficients.data.normal_(generator=generator)
            return
        index = ClassIndex(data.y_train, self.num_classes)
        pick = index.sample_sizes(self.layout["decoded_per_class"], generator=generator, replace=True)
        small = upsample(data.x_train[pick].float(), tuple(self.layout["small_shape"][1:])).flatten(1)
        _, _, vh = torch.linalg.svd(small, full_matrices=False)
        bank = vh[:k]
        if len(bank) < k:  # fewer samples than bases: pad with small random directions
            extra = torch.randn(k - len(bank), bank.shape[1], generator=generator) / math.sqrt(bank.shape[1])
            bank = torch.cat([bank, extra])
        self.bank.data.copy_(bank)
        self.coefficients.data.copy_(small @ bank.T)

    def lr_scales(self) -> dict[str, float]:
        """A basis receives the gradients of every sample that reads it: its step is divided by the coefficients'
        squared norm per basis, so that a step changes the decoded samples about as much as a pixel step would."""
        norm = float((self.coefficients.detach() ** 2).sum()) / max(1, self.coefficients.shape[1])
        return {"bank": 1.0 / max(norm, 1.0)}

    def decode(self) -> Tensor:
        c, h, w = self.layout["small_shape"]
        small = (self.coefficients @ self.bank).reshape(-1, c, h, w)
        return upsample(small, tuple(self.sample_shape[1:]))

    def decoded_labels(self) -> Tensor:
        return self.labels_  # type: ignore[return-value]

    def bases(self) -> Tensor:
        c, h, w = self.layout["small_shape"]
        return upsample(self.bank.detach().reshape(-1, c, h, w), tuple(self.sample_shape[1:]))
