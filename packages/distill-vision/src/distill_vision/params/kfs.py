"""KFS: latent codes and tiny shared decoders (Lee, Lee & Hwang, "Dataset Condensation with Latent Space Knowledge
Factorization and Sharing", arXiv 2022), https://arxiv.org/abs/2208.10494.

The paper has no public code; this follows its abstract: the summary is a set of *latent codes* in a low-dimensional
space and a set of *tiny decoders* that map codes to input space in different styles, and any code combines with any
decoder, so the decoded samples grow multiplicatively at a near-constant count of stored floats. Everything below the
abstract's level (code shape, decoder architecture, initialisation, budget) is our choice, stated here.

Codes: ``codes_per_class`` per class, each ``latent_channels x H/downsample x W/downsample`` (``latent_channels``
defaults to the image's ``C``; ``downsample`` 2). A decoder upsamples its code (bilinear, to ``H x W``) and adds a
small convolutional residual: ``mix(u) + dec(relu(enc(u)))`` with ``u`` the upsampled code, ``mix`` a 1x1 convolution
``latent_channels -> C``, ``enc`` a 3x3 convolution ``latent_channels -> hidden`` (``hidden`` 4) and ``dec`` a 3x3
convolution ``hidden -> C`` (both 'same' padding). Every code through every decoder is one decoded sample:
``codes x n_decoders`` per class (``n_decoders`` 4), the decoders shared by all classes.

Budget in stored floats (every learned tensor counts): ``plan`` charges the decoders first, ``(latent_channels·C + C)
+ (9·latent_channels·hidden + hidden) + (9·hidden·C + C)`` floats each, and spends the rest on as many codes per class
as fit (at least one, else a ``DataValidationError`` naming the fix).

Initialisation: ``mix`` maps latent channel ``c mod latent_channels`` to image channel ``c`` (the identity when
``latent_channels = C``), ``dec`` starts at zero and ``enc`` at a convolution's default random init, so every decoder
starts as plain bilinear upsampling, and the decoders still receive different gradients (through their different
``enc``); each code is the least-squares code of a real image of its class under that upsampling (the code whose
upsampling is nearest to the image, per channel group), so the decoded samples start as the best ``H/downsample``
approximations of real images (latent channels without an image channel start as small noise).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.data import ClassIndex, RealData
from distill_core.errors import DataValidationError
from distill_core.parameterized import Parameterization, check_floats, register_parameterization, upsample

__all__ = ["LatentFactorization", "decoder_floats"]


def decoder_floats(c: int, latent: int, hidden: int) -> int:
    """Floats of one decoder from ``latent`` channels to ``c`` image channels: a 1x1 mix, two 3x3 convolutions."""
    return (latent * c + c) + (9 * latent * hidden + hidden) + (9 * hidden * c + c)


def channel_map(c: int, latent: int) -> Tensor:
    """``(C, latent)`` 0/1 matrix: image channel ``i`` reads latent channel ``i mod latent`` (the initial mix)."""
    out = torch.zeros(c, latent)
    out[torch.arange(c), torch.arange(c) % latent] = 1.0
    return out


@register_parameterization
class LatentFactorization(Parameterization):
    """KFS: decoded sample = decoder(code), for every code and decoder."""

    name = "kfs"
    DEFAULTS: dict[str, Any] = {"n_decoders": 4, "downsample": 2, "latent_channels": None, "hidden": 4}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        c = self.sample_shape[0]
        k, hid = self.layout["n_decoders"], self.layout["hidden"]
        lat, h, w = self.layout["latent_shape"]
        per_class = self.layout["codes_per_class"]
        self.codes = nn.Parameter(torch.zeros(sum(per_class), lat, h, w))
        self.mix_weight = nn.Parameter(torch.zeros(k, c, lat))
        self.mix_bias = nn.Parameter(torch.zeros(k, c))
        self.enc_weight = nn.Parameter(torch.zeros(k, hid, lat, 3, 3))
        self.enc_bias = nn.Parameter(torch.zeros(k, hid))
        self.dec_weight = nn.Parameter(torch.zeros(k, c, hid, 3, 3))
        self.dec_bias = nn.Parameter(torch.zeros(k, c))
        self.register_buffer("code_labels", self.class_labels(per_class))

    @classmethod
    def plan(cls, *, sample_shape: tuple[int, ...], sizes: list[int], floats: int,
             options: dict[str, Any]) -> dict[str, Any]:
        opts = cls.check_options("kfs", options, cls.DEFAULTS)
        if len(sample_shape) != 3:
            raise DataValidationError(f"kfs needs images (C, H, W), got {tuple(sample_shape)}")
        c, height, width = sample_shape
        if opts["latent_channels"] is None:
            opts["latent_channels"] = c
        cls.check_positive_ints(opts, ("n_decoders", "downsample", "latent_channels", "hidden"))
        k, ds, lat, hid = opts["n_decoders"], opts["downsample"], opts["latent_channels"], opts["hidden"]
        if height % ds or width % ds:
            raise DataValidationError(f"kfs needs H and W divisible by downsample {ds}, got {tuple(sample_shape)}; "
                                      "choose another downsample")
        latent_shape = [lat, height // ds, width // ds]
        code = math.prod(latent_shape)
        decoders = k * decoder_floats(c, lat, hid)
        classes = len(sizes)
        check_floats(floats, decoders + classes * code, f"{k} decoders ({decoders} floats) and one latent code of "
                     f"{code} floats per class")
        per_class = (floats - decoders) // (classes * code)
        return {"n_decoders": k, "downsample": ds, "latent_channels": lat, "hidden": hid,
                "latent_shape": latent_shape, "codes_per_class": [per_class] * classes,
                "decoder_floats": decoders, "decoded_per_class": [per_class * k] * classes}

    def init_from(self, data: RealData, *, generator: torch.Generator, noise: bool) -> None:
        c = self.sample_shape[0]
        lat = self.layout["latent_channels"]
        bound = 1.0 / math.sqrt(9 * lat)  # the default init of a 3x3 convolution
        self.enc_weight.data.uniform_(-bound, bound, generator=generator)
        self.enc_bias.data.uniform_(-bound, bound, generator=generator)
        mapping = channel_map(c, lat)
        self.mix_weight.data.copy_(mapping.expand_as(self.mix_weight))
        if noise:
            self.codes.data.normal_(generator=generator)
            return
        index = ClassIndex(data.y_train, self.num_classes)
        pick = index.sample_sizes(self.layout["codes_per_class"], generator=generator, replace=True)
        x_real = data.x_train[pick].float()
        # each latent channel's target is the mean of the image channels the initial mix sends it to
        counts = mapping.sum(0)
        target = torch.einsum("cl,nchw->nlhw", mapping, x_real) / counts.clamp(min=1).reshape(1, -1, 1, 1)
        codes = least_squares_codes(target, tuple(self.layout["latent_shape"][1:]))
        empty = counts == 0
        if empty.any():
            codes[:, empty] = 0.1 * torch.randn(codes[:, empty].shape, generator=generator)
        self.codes.data.copy_(codes)

    def lr_scales(self) -> dict[str, float]:
        """Every decoder weight acts at every pixel of every code's decoded sample: its step is divided by the codes
        times pixels (as HaBa's convolutions), so that one step moves a decoded sample about as much as a pixel step
        moves a code. Codes keep the summary's lr (as IDC's stored images, each code pixel reaches a few pixels)."""
        share = 1.0 / (max(1, len(self.codes)) * self.sample_shape[1] * self.sample_shape[2])
        return dict.fromkeys(("mix_weight", "mix_bias", "enc_weight", "enc_bias", "dec_weight", "dec_bias"), share)

    def decode_with(self, u: Tensor, k: int) -> Tensor:
        """Decoder ``k`` applied to upsampled codes ``u`` ``(n, latent_channels, H, W)``."""
        mixed = torch.einsum("cl,nlhw->nchw", self.mix_weight[k], u) + self.mix_bias[k].reshape(1, -1, 1, 1)
        hidden = F.relu(F.conv2d(u, self.enc_weight[k], self.enc_bias[k], padding=1))
        return mixed + F.conv2d(hidden, self.dec_weight[k], self.dec_bias[k], padding=1)

    def decode(self) -> Tensor:
        """Per code (class-ordered), its ``n_decoders`` decodings: ``(codes·n_decoders, C, H, W)``."""
        u = upsample(self.codes, tuple(self.sample_shape[1:]))
        out = torch.stack([self.decode_with(u, k) for k in range(self.layout["n_decoders"])], dim=1)
        return out.flatten(0, 1)

    def decoded_labels(self) -> Tensor:
        return self.code_labels.repeat_interleave(self.layout["n_decoders"])  # type: ignore[operator]

    def bases(self) -> Tensor | None:
        """The codes, upsampled (as the decoders' shared first step sees them), when they have the image's
        channels."""
        if self.layout["latent_channels"] != self.sample_shape[0]:
            return None
        return upsample(self.codes.detach(), tuple(self.sample_shape[1:]))


def least_squares_codes(x: Tensor, size: tuple[int, int]) -> Tensor:
    """The codes ``(n, C, h, w)`` whose bilinear upsampling to ``x``'s ``H x W`` is nearest to ``x`` ``(n, C, H, W)``
    in squared error (per channel; bilinear upsampling is linear, so this is one least-squares solve)."""
    n, c, height, width = x.shape
    h, w = size
    basis = torch.eye(h * w, dtype=x.dtype).reshape(h * w, 1, h, w)
    operator = upsample(basis, (height, width)).reshape(h * w, height * width).T  # (H·W, h·w)
    solution = torch.linalg.lstsq(operator, x.reshape(n * c, height * width).T).solution  # (h·w, n·C)
    return solution.T.reshape(n, c, h, w)
