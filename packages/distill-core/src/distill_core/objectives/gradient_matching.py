"""Gradient-matching distances (DC: Zhao, Mopuri & Bilen, ICLR 2021, https://arxiv.org/abs/2006.05929).

Pure functions of two lists of per-parameter gradients (one list from the real batch, one from the synthetic
batch, same order and shapes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import UnknownNameError
from ..method import MethodConfig

__all__ = ["GradientMatchingConfig", "GradientMetric", "classwise_gradient_match", "gradient_match_distance",
           "layerwise_distance", "loop_schedule"]

logger = logging.getLogger(__name__)

#: DC's ``(outer_loop, inner_loop)`` per images-per-class (the reference implementation's ``get_loops``)
DC_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


@dataclass
class GradientMatchingConfig(MethodConfig):
    """The options of DC's matching loop (Zhao et al., ICLR 2021), declared once for every method built on it (DC,
    DSA, DCC, text gradient matching): per outer iteration, ``outer_loop`` matching rounds on ``batch_real`` real
    samples per class, each followed by ``inner_loop`` epochs of SGD of the matched network on the summary; 0 takes
    both from DC's table (:func:`loop_schedule`)."""

    batch_real: int = field(default=256, metadata={"help": "real samples per class and matching round"})
    batch_train: int = field(default=256, metadata={"help": "minibatch of the network's inner updates (DC: 256)"})
    lr_net: float = field(default=0.01, metadata={"help": "SGD learning rate of the network's inner updates"})
    outer_loop: int = field(default=0, metadata={"help": "matching rounds per iteration (0: DC's table by ipc)"})
    inner_loop: int = field(default=0, metadata={"help": "network epochs on the summary between rounds (0: table)"})
    metric: Literal["ours", "mse", "cos"] = field(default="ours", metadata={
        "help": "gradient distance: 'ours' (DC's layer-wise cosine), 'mse' or 'cos' (one cosine over all layers)"})


def loop_schedule(ipc: int) -> tuple[int, int]:
    """DC's ``(outer_loop, inner_loop)`` for ``ipc``: matching steps per outer iteration, and inner epochs of the
    network on the summary between them. Other budgets take the nearest tabulated one (ties: the smaller)."""
    nearest = min(DC_LOOPS, key=lambda k: (abs(k - ipc), k))
    if nearest != ipc:
        logger.info("ipc %d is not in DC's loop schedule; using the loops of ipc %d: %s", ipc, nearest,
                    DC_LOOPS[nearest])
    return DC_LOOPS[nearest]


def classwise_gradient_match(
    net: nn.Module,
    classes: Iterable[int],
    losses: Callable[[int], tuple[Tensor, Tensor]],
    *,
    metric: GradientMetric = "ours",
    weights: Sequence[float] | None = None,
    params: Sequence[Tensor] | None = None,
) -> Tensor:
    """DC's matching loss: for every class, the distance between the network's parameter gradients of the real loss
    (detached) and of the synthetic loss (differentiable, ``create_graph``), summed over classes.

    Args:
        net: the network whose trainable parameters' gradients are matched.
        classes: the classes to match, in order (the order fixes the random draws inside ``losses``).
        losses: ``c -> (real_loss, synthetic_loss)``, both 0-d tensors computed with ``net`` on class ``c``.
        metric: see :func:`gradient_match_distance`.
        weights: ``weights[c]`` multiplies class ``c``'s distance (GCond: ``n_syn_c / max_c n_syn_c``); ``None``:
            every class counts once (DC).
        params: the parameters whose gradients are matched (IDC: the convolution weights only); ``None``: every
            trainable parameter of ``net``.

    Returns:
        A 0-d tensor, differentiable in whatever the synthetic losses depend on.

    Shapes:
        each loss from ``losses(c)``: 0-d; returns a 0-d tensor.
    """
    params = [p for p in net.parameters() if p.requires_grad] if params is None else list(params)
    total: Tensor | None = None
    for c in classes:
        real_loss, syn_loss = losses(c)
        g_real = [g.detach() for g in torch.autograd.grad(real_loss, params)]
        g_syn = torch.autograd.grad(syn_loss, params, create_graph=True)
        term = gradient_match_distance(g_real, g_syn, metric=metric)
        if weights is not None:
            term = weights[c] * term
        total = term if total is None else total + term
    if total is None:
        raise ValueError("classwise_gradient_match needs at least one class")
    return total

GradientMetric = Literal["ours", "mse", "l1", "cos"]


def layerwise_distance(g_real: Tensor, g_syn: Tensor) -> Tensor:
    """DC's distance of one parameter's gradients: ``sum_rows (1 - cos(row_real, row_syn))``.

    Rows are output units: conv weights ``(out, in, h, w)`` become ``out`` rows of length ``in*h*w``; linear weights
    ``(out, in)`` are used as they are; 3-D tensors ``(C, h, w)`` give ``C`` rows. 1-D tensors (biases, norm
    affine parameters) contribute 0, as in the reference implementation. ``1e-6`` is added to the denominator.

    Shapes:
        g_real, g_syn: one parameter's gradient, any shape (both the same); returns a 0-d tensor.
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
            gradients), ``"l1"`` (their L1 distance; IDC on MNIST and Fashion-MNIST) or ``"cos"`` (1 - cosine of the
            concatenated flat gradients).

    Returns:
        Scalar distance.

    Shapes:
        g_real, g_syn: sequences of per-parameter gradients, pairwise of equal shape; returns a 0-d tensor.
    """
    if len(g_real) != len(g_syn):
        raise ValueError(f"got {len(g_real)} real and {len(g_syn)} synthetic gradient tensors")
    if metric == "ours":
        return torch.stack([layerwise_distance(a, b) for a, b in zip(g_real, g_syn)]).sum()
    flat_real = torch.cat([g.reshape(-1) for g in g_real])
    flat_syn = torch.cat([g.reshape(-1) for g in g_syn])
    if metric == "mse":
        return ((flat_real - flat_syn) ** 2).sum()
    if metric == "l1":
        return (flat_real - flat_syn).abs().sum()
    if metric == "cos":
        return 1 - (flat_real * flat_syn).sum() / (flat_real.norm() * flat_syn.norm() + 1e-6)
    raise UnknownNameError("gradient metric", str(metric), ["ours", "mse", "l1", "cos"])
