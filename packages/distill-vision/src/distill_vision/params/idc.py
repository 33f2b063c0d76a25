"""IDC's multi-formation (Kim et al., ICML 2022, "Dataset Condensation via Efficient Synthetic-Data
Parameterization", https://arxiv.org/abs/2205.14959).

Each stored image of size ``H x W`` is cut into ``factor x factor`` tiles and every tile is upsampled (bilinear)
back to ``H x W``: one stored image yields ``factor²`` training samples, at no cost in stored floats (the decoder is a
fixed resize). IDC's initialisation (``mix``) packs ``factor²`` downsampled real images of the class into each stored
image. The reference uses factor 2 on CIFAR, MNIST and Fashion-MNIST (3 on ImageNet); factor 1 is IDC-I.

Layout: ``images`` ``(n_stored, C, H, W)``, stored images per class as the dense budget would have them (the
floats of ``--ipc`` by default; ``budget_floats`` gives ``floats // (C·H·W)`` images, spread over classes).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from distill_core.data import ClassIndex, RealData
from distill_core.errors import DataValidationError
from distill_core.parameterized import Parameterization, check_floats, register_parameterization, upsample

__all__ = ["MultiFormation"]


def _spread(total: int, sizes: list[int]) -> list[int]:
    """``total`` stored samples over classes: ``sizes`` when they add up, else as even as possible."""
    if sum(sizes) == total:
        return list(sizes)
    base, extra = divmod(total, len(sizes))
    return [base + (1 if c < extra else 0) for c in range(len(sizes))]


def tile_images(x: Tensor, factor: int) -> Tensor:
    """``(n·f², C, H/f, W/f)`` tiles -> ``(n, C, H, W)`` stored images (row-major tile order)."""
    nf, c, h, w = x.shape
    n = nf // (factor * factor)
    return x.reshape(n, factor, factor, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h * factor, w * factor)


def untile_images(x: Tensor, factor: int) -> Tensor:
    """``(n, C, H, W)`` -> ``(n·f², C, H/f, W/f)``: the inverse of :func:`tile_images`."""
    n, c, hh, ww = x.shape
    h, w = hh // factor, ww // factor
    return x.reshape(n, c, factor, h, factor, w).permute(0, 2, 4, 1, 3, 5).reshape(n * factor * factor, c, h, w)


@register_parameterization
class MultiFormation(Parameterization):
    """IDC multi-formation: ``factor²`` upsampled tiles per stored image."""

    name = "idc"
    DEFAULTS: dict[str, Any] = {"factor": 2}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        n = sum(self.layout["stored_per_class"])
        self.images = nn.Parameter(torch.zeros(n, *self.sample_shape))
        self.register_buffer("stored_labels", self.class_labels(self.layout["stored_per_class"]))

    @property
    def factor(self) -> int:
        return int(self.layout["factor"])

    @classmethod
    def plan(cls, *, sample_shape: tuple[int, ...], sizes: list[int], floats: int,
             options: dict[str, Any]) -> dict[str, Any]:
        opts = cls.check_options("idc", options, cls.DEFAULTS)
        cls.check_positive_ints(opts, ("factor",))
        factor = opts["factor"]
        if len(sample_shape) != 3 or sample_shape[1] % factor or sample_shape[2] % factor:
            raise DataValidationError(f"idc needs images (C, H, W) with H and W divisible by factor {factor}, got "
                                      f"{tuple(sample_shape)}; choose another factor")
        per_image = math.prod(sample_shape)
        check_floats(floats, per_image * len(sizes), "one stored image per class")
        stored = _spread(floats // per_image, sizes)
        return {"factor": factor, "stored_per_class": stored,
                "decoded_per_class": [n * factor * factor for n in stored]}

    def init_from(self, data: RealData, *, generator: torch.Generator, noise: bool) -> None:
        f = self.factor
        if noise:
            self.images.data.normal_(generator=generator)
            return
        _, h, w = self.sample_shape
        # f x f real samples per stored image, tiled in class order (every class's count is a multiple of f^2)
        counts = [n * f * f for n in self.layout["stored_per_class"]]
        pick = ClassIndex(data.y_train, self.num_classes).sample_sizes(counts, generator=generator, replace=True)
        self.images.data.copy_(tile_images(upsample(data.x_train[pick].float(), (h // f, w // f)), f))

    def decode(self) -> Tensor:
        _, h, w = self.sample_shape
        return upsample(untile_images(self.images, self.factor), (h, w))

    def decoded_labels(self) -> Tensor:
        return self.stored_labels.repeat_interleave(self.factor * self.factor)  # type: ignore[operator]
