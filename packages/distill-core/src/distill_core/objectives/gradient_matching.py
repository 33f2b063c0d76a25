"""Gradient-matching distances (DC: Zhao, Mopuri & Bilen, ICLR 2021, https://arxiv.org/abs/2006.05929).

Pure functions of two lists of per-parameter gradients (one list from the real batch, one from the synthetic
batch, same order and shapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ..errors import UnknownNameError

__all__ = ["GradientMetric", "gradient_match_distance", "layerwise_distance"]

GradientMetric = Literal["ours", "mse", "cos"]


def layerwise_distance(g_real: Tensor, g_syn: Tensor) -> Tensor:
    """DC's distance of one parameter's gradients: ``sum_rows (1 - cos(row_real, row_syn))``.

    Rows are output units: conv weights ``(out, in, h, w)`` become ``out`` rows of length ``in*h*w``; linear weights
    ``(out, in)`` are used as they are; 3-D tensors ``(C, h, w)`` give ``C`` rows. 1-D tensors (biases, norm
    affine parameters) contribute 0, as in the reference implementation. ``1e-6`` is added to the denominator.
    """
    if g_real.shape != g_syn.shape:
        raise ValueError(f"gradient shapes differ: {tuple(g_real.shape)} vs {tuple(g_syn.shape)}")
    if g_real.dim() <= 1:
        return g_real.new_zeros(())
    a = g_real.reshape(g_real.shape[0], -1)
    b = g_syn.reshape(g_syn.shape[0], -1)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)
    return (1 - cos).sum()


def gradient_match_distance(
    g_real: Sequence[Tensor], g_syn: Sequence[Tensor], *, metric: GradientMetric = "ours"
) -> Tensor:
    """Distance between two gradient lists.

    Args:
        g_real: gradients of the loss on real data, one tensor per parameter (usually detached).
        g_syn: gradients on synthetic data, same order and shapes (with graph, to back-propagate into the data).
        metric: ``"ours"`` (DC's layer-wise cosine distance), ``"mse"`` (squared L2 of the concatenated flat
            gradients) or ``"cos"`` (1 - cosine of the concatenated flat gradients).

    Returns:
        Scalar distance.
    """
    if len(g_real) != len(g_syn):
        raise ValueError(f"got {len(g_real)} real and {len(g_syn)} synthetic gradient tensors")
    if metric == "ours":
        return torch.stack([layerwise_distance(a, b) for a, b in zip(g_real, g_syn)]).sum()
    flat_real = torch.cat([g.reshape(-1) for g in g_real])
    flat_syn = torch.cat([g.reshape(-1) for g in g_syn])
    if metric == "mse":
        return ((flat_real - flat_syn) ** 2).sum()
    if metric == "cos":
        return 1 - (flat_real * flat_syn).sum() / (flat_real.norm() * flat_syn.norm() + 1e-6)
    raise UnknownNameError("gradient metric", str(metric), ["ours", "mse", "cos"])
