"""Random-feature estimates of NNGP kernels (RFAD: Loo et al. 2022, https://arxiv.org/abs/2210.12067).

The NNGP of a network whose last layer is a dense readout (weight variance ``σ_w²``, bias variance ``σ_b²``) on
top of a random feature map ``φ`` is :math:`K(x, x') = σ_w^2\\,\\mathbb{E}_φ[φ(x)\\cdot φ(x')] / D + σ_b^2`. RFAD
estimates the expectation with ``M`` randomly initialised networks (the readout removed): the features of all
models are concatenated and divided by :math:`\\sqrt{M D}`, and :math:`K = σ_w^2 Φ_1 Φ_2^T + σ_b^2`
(RFAD's ``2 Φ Φᵀ + 0.01``, yolky/RFAD). The estimate is unbiased for the finite-width
network's NNGP and converges to the infinite-width NNGP as the width and ``M`` grow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ..errors import DataValidationError

__all__ = ["RandomFeatureNNGP", "random_feature_kernel", "random_features"]


def random_features(models: Sequence[nn.Module], x: Tensor, *, block_size: int = 1024) -> Tensor:
    """Concatenated flattened outputs of ``models`` on ``x``, divided by ``sqrt(M · D)``.

    Args:
        models: ``M`` feature extractors (networks without their readout), each mapping ``(n, ...)`` to ``(n, ...)``
            with ``D`` entries per sample.
        x: ``(n, ...)`` inputs.
        block_size: inputs per forward pass.

    Returns:
        ``Φ`` of shape ``(n, M·D)`` (differentiable w.r.t. ``x``).
    """
    if not models:
        raise DataValidationError("random_features needs at least one model")
    feats = []
    for model in models:
        out = torch.cat([model(x[i:i + block_size]).reshape(len(x[i:i + block_size]), -1)
                         for i in range(0, len(x), block_size)], 0)
        feats.append(out)
    phi = torch.cat(feats, 1)
    return phi / phi.shape[1] ** 0.5


def random_feature_kernel(phi1: Tensor, phi2: Tensor | None = None, *, w_var: float = 2.0,
                          b_var: float = 0.01) -> Tensor:
    """NNGP of a dense readout on random features: ``w_var · Φ1 Φ2ᵀ + b_var``.

    Shapes:
        phi1: ``(n1, F)``; phi2: ``(n2, F)``; returns ``(n1, n2)``.
    """
    phi2 = phi1 if phi2 is None else phi2
    if phi1.shape[1] != phi2.shape[1]:
        raise DataValidationError(f"feature widths differ: {phi1.shape[1]} vs {phi2.shape[1]}")
    return w_var * phi1 @ phi2.T + b_var


class RandomFeatureNNGP:
    """An RFAD kernel: ``n_models`` random networks drawn by ``make_model``, redrawn with :meth:`resample`.

    Args:
        make_model: ``make_model(generator) -> nn.Module`` building one randomly initialised feature extractor
            (its initialisation must use the generator, e.g. ``torch.nn.init.*_(..., generator=g)``).
        n_models: ``M``, the number of random networks (RFAD: 8).
        w_var: readout weight variance (RFAD: 2).
        b_var: readout bias variance (RFAD: 0.01).
        device: where the models live.

    Example::

        kernel = RandomFeatureNNGP(make_model=lambda g: wide_convnet(g), n_models=8)
        kernel.resample(torch.Generator().manual_seed(step))
        k_ss = kernel(x_syn)            # (n, n)
        k_ts = kernel(x_real, x_syn)    # (m, n)
    """

    def __init__(self, *, make_model: Callable[[torch.Generator], nn.Module], n_models: int = 8,
                 w_var: float = 2.0, b_var: float = 0.01, device: torch.device | str = "cpu") -> None:
        if n_models < 1:
            raise DataValidationError(f"n_models must be >= 1, got {n_models}")
        self.make_model = make_model
        self.n_models = n_models
        self.w_var = w_var
        self.b_var = b_var
        self.device = torch.device(device)
        self.models: list[nn.Module] = []

    def resample(self, generator: torch.Generator) -> None:
        """Draw ``n_models`` fresh random networks (parameters frozen)."""
        self.models = []
        for _ in range(self.n_models):
            model = self.make_model(generator).to(self.device).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            self.models.append(model)

    def features(self, x: Tensor) -> Tensor:
        if not self.models:
            raise DataValidationError("call resample(generator) before using a RandomFeatureNNGP")
        return random_features(self.models, x)

    def __call__(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        phi1 = self.features(x1)
        phi2 = phi1 if x2 is None else self.features(x2)
        return random_feature_kernel(phi1, phi2, w_var=self.w_var, b_var=self.b_var)
