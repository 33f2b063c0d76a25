"""Empirical neural tangent kernel of any torch model, computed with ``torch.func`` in blocks.

For a model :math:`f_\\theta: \\mathbb{R}^{d} \\to \\mathbb{R}^{C}` the empirical NTK is
:math:`\\Theta(x, x') = \\frac{1}{C} \\sum_c \\langle \\partial_\\theta f_c(x), \\partial_\\theta f_c(x') \\rangle`
(the trace over the output axis, normalised so that it is comparable with the per-output analytic kernels of
:mod:`distill_core.kernels.fc`; Jacot et al. 2018, https://arxiv.org/abs/1806.07572; neural-tangents'
``empirical_ntk_fn`` with ``trace_axes=(-1,)``). Per-sample Jacobians come from
``torch.func.vmap(torch.func.jacrev(...))`` (reverse mode: one VJP per output unit) for one block of inputs at a
time, so memory is ``O(block_size · C · #params)`` whatever the number of inputs.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from ..errors import DataValidationError

__all__ = ["empirical_ntk", "jacobian_block"]


def jacobian_block(model: nn.Module, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
    """Per-sample Jacobians of ``model`` w.r.t. its parameters, flattened: ``(n, C, P)``.

    Args:
        model: maps ``(n, *sample_shape)`` to ``(n, C)`` (or ``(n,)``); must not mix samples (no BatchNorm in
            training mode: call ``model.eval()``).
        x: ``(n, *sample_shape)`` inputs.
        params: the parameters to differentiate (default: all of ``model``'s, detached).

    Returns:
        ``(n, C, P)`` with ``P`` the total number of parameter entries.
    """
    if params is None:
        params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def f(p: dict[str, Tensor], xi: Tensor) -> Tensor:
        out = functional_call(model, (p, buffers), (xi[None],))
        return out.reshape(-1)

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    n = len(x)
    return torch.cat([j.reshape(n, j.shape[1], -1) for j in jac.values()], -1)


def empirical_ntk(
    model: nn.Module,
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    params: dict[str, Tensor] | None = None,
    block_size: int = 32,
    output: Literal["trace", "full"] = "trace",
) -> Tensor:
    """Empirical NTK ``J(x1) J(x2)ᵀ`` of ``model`` at its current parameters.

    Args:
        model: the network (see :func:`jacobian_block`).
        x1: ``(n1, ...)`` inputs.
        x2: ``(n2, ...)`` inputs or ``None`` for ``x1``.
        params: parameters to differentiate (default: all).
        block_size: inputs per Jacobian block; peak memory is about ``2 · block_size · C · P`` floats.
        output: ``"trace"``: mean over output units, ``(n1, n2)``; ``"full"``: ``(n1, n2, C, C)``.

    Returns:
        The kernel matrix (differentiable w.r.t. the inputs through ``torch.func``).
    """
    if block_size < 1:
        raise DataValidationError(f"block_size must be >= 1, got {block_size}")
    if output not in ("trace", "full"):
        raise DataValidationError(f"output must be 'trace' or 'full', got {output!r}")
    same = x2 is None
    x2 = x1 if x2 is None else x2
    if tuple(x1.shape[1:]) != tuple(x2.shape[1:]):
        raise DataValidationError(f"x1 samples have shape {tuple(x1.shape[1:])} but x2 {tuple(x2.shape[1:])}")
    blocks2 = None
    if same or len(x2) <= block_size:  # keep the column Jacobians when they are few or shared with the rows
        blocks2 = [jacobian_block(model, x2[j:j + block_size], params) for j in range(0, len(x2), block_size)]
    rows = []
    for i in range(0, len(x1), block_size):
        j1 = jacobian_block(model, x1[i:i + block_size], params) if not same else blocks2[i // block_size]  # type: ignore[index]
        cols = []
        for jb, j in enumerate(range(0, len(x2), block_size)):
            j2 = blocks2[jb] if blocks2 is not None else jacobian_block(model, x2[j:j + block_size], params)
            if output == "trace":
                cols.append(torch.einsum("acp,bcp->ab", j1, j2) / j1.shape[1])
            else:
                cols.append(torch.einsum("acp,bdp->abcd", j1, j2))
        rows.append(torch.cat(cols, 1))
    return torch.cat(rows, 0)
