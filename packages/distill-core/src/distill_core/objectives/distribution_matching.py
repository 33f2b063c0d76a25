"""Distribution-matching objectives (DM: Zhao & Bilen, WACV 2023, https://arxiv.org/abs/2110.04181; the MMD of
GCDM: Liu et al. 2022, https://arxiv.org/abs/2206.13658)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..method import MethodConfig

__all__ = ["DistributionMatchingConfig", "classwise_distance", "classwise_mean_embedding_distance", "gaussian_mmd2",
           "mean_embedding_distance"]


@dataclass
class DistributionMatchingConfig(MethodConfig):
    """The options of DM's loop (Zhao & Bilen, WACV 2023), declared once for every method built on it (image and
    text DM, DP-DM): every outer step draws a fresh random embedding network and matches the class-wise mean
    embeddings of ``batch_real`` real samples per class with the summary's. Reference defaults: 20,000 iterations,
    SGD on the samples at lr 1.0 with momentum 0.5, 256 real samples per class."""

    defaults = {"steps": 20000, "lr_summary": 1.0}
    batch_real: int = field(default=256, metadata={"help": "real samples per class and step"})


def mean_embedding_distance(e_real: Tensor, e_syn: Tensor) -> Tensor:
    """DM's distance ``||mean(e_real) - mean(e_syn)||^2`` (the linear-kernel MMD^2).

    Shapes:
        e_real: ``(n_real, d)``; e_syn: ``(n_syn, d)``; returns a scalar.
    """
    return ((e_real.mean(0) - e_syn.mean(0)) ** 2).sum()


def classwise_mean_embedding_distance(
    e_real: Tensor, y_real: Tensor, e_syn: Tensor, y_syn: Tensor, num_classes: int, *,
    weights: Sequence[float] | None = None,
) -> Tensor:
    """Sum over classes of :func:`mean_embedding_distance` (DM's loss); classes absent from either side are skipped.
    :func:`classwise_distance` with that distance.

    Shapes:
        e_real: ``(n, d)`` with labels y_real ``(n,)``; e_syn: ``(m, d)`` with y_syn ``(m,)``; returns a 0-d tensor.
    """
    return classwise_distance(e_real, y_real, e_syn, y_syn, num_classes, weights=weights)


def classwise_distance(
    e_real: Tensor, y_real: Tensor, e_syn: Tensor, y_syn: Tensor, num_classes: int, *,
    distance: Callable[[Tensor, Tensor], Tensor] = mean_embedding_distance,
    weights: Sequence[float] | None = None,
) -> Tensor:
    """``sum_c w_c distance(e_real[y_real == c], e_syn[y_syn == c])``, skipping classes absent from either side.

    Args:
        e_real, y_real: real embeddings and their classes.
        e_syn, y_syn: synthetic embeddings and their classes.
        num_classes: classes ``0..num_classes-1`` are visited in order.
        distance: the distance of two sets of embeddings (:func:`mean_embedding_distance`, the linear-kernel MMD^2,
            or :func:`gaussian_mmd2`).
        weights: ``weights[c]`` multiplies class ``c``'s distance (GCDM: ``n_syn_c / max_c n_syn_c``); ``None``: 1.

    Shapes:
        e_real: ``(n, d)``; y_real: ``(n,)``; e_syn: ``(m, d)``; y_syn: ``(m,)``; returns a 0-d tensor.
    """
    total = e_syn.new_zeros(())
    for c in range(num_classes):
        real_c, syn_c = e_real[y_real == c], e_syn[y_syn == c]
        if len(real_c) and len(syn_c):
            term = distance(real_c, syn_c)
            total = total + (term if weights is None else weights[c] * term)
    return total


def gaussian_mmd2(x: Tensor, y: Tensor, *, bandwidths: tuple[float, ...] = (1.0,), relative: bool = True) -> Tensor:
    """Biased estimate of MMD^2 with a sum of Gaussian kernels ``exp(-||a-b||^2 / (2 s^2))``.

    Args:
        x: ``(n, d)`` samples of the first distribution.
        y: ``(m, d)`` samples of the second distribution.
        bandwidths: kernel widths ``s``; with ``relative`` they multiply the median pairwise distance of the pooled
            samples (detached), which keeps the kernel informative at any feature scale.
        relative: scale bandwidths by the median heuristic.

    Shapes:
        x: ``(n, d)``; y: ``(m, d)``; returns a 0-d tensor.
    """
    pooled = torch.cat([x, y])
    d2 = torch.cdist(pooled, pooled).pow(2)
    scale = d2.detach()[d2.detach() > 0].median() if relative and (d2 > 0).any() else d2.new_ones(())
    k = sum(torch.exp(-d2 / (2 * s * s * scale)) for s in bandwidths)
    n = len(x)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()
