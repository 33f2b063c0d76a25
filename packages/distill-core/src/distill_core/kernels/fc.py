r"""Analytic NNGP and NTK of fully-connected ReLU networks of any depth (the arc-cosine recursion).

The kernels are those of neural-tangents' ``stax.serial(*[Dense(w), Relu()] * depth, Dense(out))`` in the NTK
parameterisation (Jacot et al. 2018, https://arxiv.org/abs/1806.07572; Arora et al. 2019,
https://arxiv.org/abs/1904.11955; ReLU arc-cosine kernel: Cho & Saul 2009). With ``d`` input features:

.. math::

    \Sigma_0(x, x') = x \cdot x' / d, \qquad \Theta_0 = 0

and for every dense layer (the ``depth`` hidden ones and the output layer)

.. math::

    \Sigma_{l+1} = \sigma_w^2 \hat\Sigma_l + \sigma_b^2, \qquad
    \Theta_{l+1} = \sigma_w^2 \dot\Sigma_l \Theta_l + \Sigma_{l+1},

where before the first dense layer :math:`\hat\Sigma = \Sigma_0`, :math:`\dot\Sigma = 1`, and after a ReLU, with
:math:`\theta = \arccos(\Sigma(x,x') / \sqrt{\Sigma(x,x)\Sigma(x',x')})`,

.. math::

    \hat\Sigma = \frac{\sqrt{\Sigma(x,x)\Sigma(x',x') - \Sigma(x,x')^2} + (\pi - \theta)\Sigma(x,x')}{2\pi},
    \qquad \dot\Sigma = \frac{\pi - \theta}{2\pi}.

For ``depth=1`` this is exactly the infinite-width autoencoder kernel of Distill-CF / ∞-AE (noveens/distill_cf,
one hidden ReLU layer). Defaults ``w_var=2, b_var=0.01`` are KIP's ``W_std=√2, b_std=0.1``.

Everything is computed in ``block_size x block_size`` tiles of the output, so peak memory is bounded by the block
size (plus the output itself), and is differentiable with respect to both inputs (the arc-cosine is evaluated
safely at coincident points, so duplicate inputs give finite gradients).

Without autograd the recursion is memory-bound element-wise work after one matmul per tile; ``compile=True`` runs
each layer's element-wise work as one in-place ``torch.compile``-generated loop over blocks of whole output rows,
written straight into the output (falls back to eager, logged once, where compilation does not work, e.g. without
a C++ compiler).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import DataValidationError

__all__ = ["fc_kernel_diag", "fc_nngp", "fc_ntk", "fc_kernels"]

logger = logging.getLogger(__name__)

_COS_CLAMP = 1.0 - 1e-6
_CHUNK_ELEMENTS = 131072  # element-wise working set per chunk (512 KiB of float32 per array)


def _flatten(x: Tensor, name: str) -> Tensor:
    if x.dim() == 0:
        raise DataValidationError(f"{name} must have a batch dimension, got a scalar")
    x = x.reshape(len(x), -1)
    if x.shape[1] == 0:
        raise DataValidationError(f"{name} has zero features per sample")
    if not torch.is_floating_point(x):
        x = x.float()
    return x


def _check(depth: int, w_var: float, b_var: float) -> None:
    if depth < 0:
        raise DataValidationError(f"depth must be >= 0 hidden ReLU layers, got {depth}")
    if w_var <= 0 or b_var < 0:
        raise DataValidationError(f"need w_var > 0 and b_var >= 0, got w_var={w_var}, b_var={b_var}")


def fc_kernel_diag(x: Tensor, *, depth: int = 1, w_var: float = 2.0, b_var: float = 0.01) -> tuple[Tensor, Tensor]:
    """The diagonals ``K(x_i, x_i)`` of the NNGP and of the NTK (``O(n d)``: no ``n x n`` matrix).

    Returns:
        ``(nngp_diag, ntk_diag)``, each ``(n,)``.
    """
    _check(depth, w_var, b_var)
    x = _flatten(x, "x")
    sigma = (x * x).sum(1) / x.shape[1]
    nngp = w_var * sigma + b_var
    ntk = nngp
    for _ in range(depth):
        # ReLU at theta = 0: E[relu(u)^2] = q / 2 and E[relu'(u)^2] = 1 / 2.
        nngp = w_var * nngp / 2 + b_var
        ntk = w_var * ntk / 2 + nngp
    return nngp, ntk


def _needs_grad(x1: Tensor, x2: Tensor) -> bool:
    """Whether autograd records the kernel (otherwise the in-place / compiled paths apply)."""
    return torch.is_grad_enabled() and (x1.requires_grad or x2.requires_grad)


def _tile(x1: Tensor, x2: Tensor, q1: list[Tensor], q2: list[Tensor], depth: int, w_var: float, b_var: float,
          want_ntk: bool, on_diagonal: bool = False) -> tuple[Tensor, Tensor | None]:
    """One output tile. ``q1[l]``/``q2[l]``: the diagonals of Σ after dense layer ``l`` (``l = 0..depth-1``).
    ``on_diagonal``: the tile is a diagonal block of a Gram matrix, whose diagonal has cos = 1 exactly."""
    if not _needs_grad(x1, x2):
        return _tile_inplace(x1, x2, q1, q2, depth, w_var, b_var, want_ntk, on_diagonal)
    d = x1.shape[1]
    eye = torch.eye(len(x1), dtype=torch.bool, device=x1.device) if on_diagonal and depth > 0 else None
    sigma = w_var * (x1 @ x2.T) / d + b_var
    ntk = sigma if want_ntk else None
    for layer in range(depth):
        norm = torch.outer(q1[layer].sqrt(), q2[layer].sqrt())
        cos = sigma / norm
        if eye is not None:  # exact angle 0 at coincident points, instead of arccos(1 - rounding) ~ 1e-8
            cos = torch.where(eye, torch.ones_like(cos), cos)
        # The value uses the exact angle; the gradient comes from a slightly clamped one, since d arccos / d cos is
        # infinite at coincident inputs (cos = 1).
        theta_safe = torch.arccos(cos.clamp(-_COS_CLAMP, _COS_CLAMP))
        theta = theta_safe + (torch.arccos(cos.detach().clamp(-1.0, 1.0)) - theta_safe.detach())
        # sqrt(q q' - s^2) = norm * sin(theta): never a sqrt(0) on the gradient path.
        relu_cov = (norm * torch.sin(theta) + (math.pi - theta) * sigma) / (2 * math.pi)
        new_sigma = w_var * relu_cov + b_var
        if ntk is not None:
            ntk = w_var * (math.pi - theta) / (2 * math.pi) * ntk + new_sigma
        sigma = new_sigma
    return sigma, ntk


def _tile_inplace(x1: Tensor, x2: Tensor, q1: list[Tensor], q2: list[Tensor], depth: int, w_var: float,
                  b_var: float, want_ntk: bool, on_diagonal: bool) -> tuple[Tensor, Tensor | None]:
    """:func:`_tile` without autograd: one matmul for the whole tile, then the same formulas as in-place
    element-wise passes over cache-sized row chunks (the recursion is memory-bound; a chunk stays in cache for all
    of its ~15 passes)."""
    d = x1.shape[1]
    sigma_all = torch.addmm(x1.new_full((1, 1), b_var), x1, x2.T, alpha=w_var / d)
    ntk_all = (sigma_all.clone() if depth > 0 else sigma_all) if want_ntk else None
    if depth == 0:
        return sigma_all, ntk_all
    scale = w_var / (2 * math.pi)
    roots1 = [q.sqrt() for q in q1]
    roots2 = [q.sqrt() for q in q2]
    n1, n2 = sigma_all.shape
    rows = max(1, _CHUNK_ELEMENTS // max(1, n2))
    for r in range(0, n1, rows):
        sigma = sigma_all[r:r + rows]
        ntk = None if ntk_all is None else ntk_all[r:r + rows]
        for layer in range(depth):
            norm = torch.outer(roots1[layer][r:r + rows], roots2[layer])
            theta = torch.div(sigma, norm).clamp_(-1.0, 1.0)
            if on_diagonal:  # the chunk holds rows r.. of a diagonal block: entries (i, r + i) are coincident
                theta.diagonal(offset=r).fill_(1.0)
            theta.arccos_()
            norm.mul_(torch.sin(theta))  # sqrt(q q' - s^2)
            theta.neg_().add_(math.pi)  # now pi - theta
            sigma.mul_(theta).add_(norm).mul_(scale).add_(b_var)  # w * relu_cov + b
            if ntk is not None:
                ntk.mul_(theta).mul_(scale).add_(sigma)
    return sigma_all, ntk_all


def _relu_layer(sigma: Tensor, ntk: Tensor | None, root1: Tensor, root2: Tensor, diag_offset: int, scale: float,
                b_var: float) -> None:
    """One hidden ReLU layer of the recursion, in place on a block of output rows, written for ``torch.compile``
    (one fused loop, no temporaries the size of the block).

    ``root1`` ``(m, 1)`` / ``root2`` ``(1, n)``: square roots of the diagonals; ``diag_offset``: entries
    ``(i, i + diag_offset)`` are coincident points (cos = 1 exactly), ``-1`` for none."""
    norm = root1 * root2
    cos = (sigma / norm).clamp(-1.0, 1.0)
    if diag_offset >= 0:
        rows = torch.arange(sigma.shape[0], device=sigma.device)[:, None]
        cols = torch.arange(sigma.shape[1], device=sigma.device)[None, :]
        cos = torch.where(cols == rows + diag_offset, torch.ones_like(cos), cos)
    weight = scale * (math.pi - torch.arccos(cos))  # w_var * (pi - theta) / (2 pi)
    new_sigma = sigma * weight + scale * norm * torch.sqrt((1.0 - cos) * (1.0 + cos)) + b_var
    if ntk is not None:
        ntk.copy_(ntk * weight + new_sigma)
    sigma.copy_(new_sigma)


_COMPILED_LAYER: Callable[..., None] | None = None
_COMPILE_FAILED = False


def _kernels_compiled(x1: Tensor, x2: Tensor, q1: list[Tensor], q2: list[Tensor], depth: int, w_var: float,
                      b_var: float, want_ntk: bool, gram: bool, block_size: int) -> tuple[Tensor, Tensor | None] | None:
    """The no-autograd kernels with each layer as one compiled in-place loop over blocks of whole output rows
    (``block_size²`` entries each), written straight into the output; ``None`` when compilation fails here."""
    global _COMPILED_LAYER, _COMPILE_FAILED
    if _COMPILE_FAILED or depth == 0:
        return None
    n1, n2 = len(x1), len(x2)
    sigma = x1.new_empty(n1, n2)
    ntk = x1.new_empty(n1, n2) if want_ntk else None
    bias = x1.new_full((1, 1), b_var)
    roots2 = [q.sqrt()[None, :] for q in q2]
    rows = max(1, block_size * block_size // max(1, n2))
    try:
        if _COMPILED_LAYER is None:
            _COMPILED_LAYER = torch.compile(_relu_layer, dynamic=True)
        for i in range(0, n1, rows):
            s = sigma[i:i + rows]
            torch.addmm(bias, x1[i:i + rows], x2.T, alpha=w_var / x1.shape[1], out=s)
            t = None
            if ntk is not None:
                t = ntk[i:i + rows]
                t.copy_(s)
            for layer in range(depth):
                _COMPILED_LAYER(s, t, q1[layer][i:i + rows].sqrt()[:, None], roots2[layer], i if gram else -1,
                                w_var / (2 * math.pi), b_var)
    except Exception as exc:  # no C++ compiler, unsupported platform: eager for the rest of the process
        logger.warning("torch.compile is unavailable here (%s: %s); the FC kernels run eager",
                       type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        _COMPILE_FAILED = True
        return None
    return sigma, ntk


def _layer_diags(x: Tensor, depth: int, w_var: float, b_var: float) -> list[Tensor]:
    q = w_var * (x * x).sum(1) / x.shape[1] + b_var
    out = [q]
    for _ in range(depth - 1):
        q = w_var * q / 2 + b_var
        out.append(q)
    return out


def fc_kernels(
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    depth: int = 1,
    w_var: float = 2.0,
    b_var: float = 0.01,
    block_size: int = 2048,
    want_ntk: bool = True,
    compile: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """NNGP and (optionally) NTK of a ``depth``-hidden-layer ReLU network in one pass.

    Args:
        x1: ``(n1, ...)`` inputs (flattened to ``(n1, d)``).
        x2: ``(n2, ...)`` inputs, or ``None`` for ``x1`` (the Gram matrix).
        depth: number of hidden ReLU layers (0: a linear model).
        w_var: weight variance ``σ_w²``.
        b_var: bias variance ``σ_b²``.
        block_size: tile size of the output; peak memory beyond the output is ``O(block_size²)``.
        want_ntk: also compute the NTK.
        compile: without autograd, run the element-wise recursion as ``torch.compile``-generated loops (eager
            where compilation does not work here; the first call per shape family compiles, seconds).

    Returns:
        ``(nngp, ntk)`` of shape ``(n1, n2)``; ``ntk`` is ``None`` when not requested.
    """
    _check(depth, w_var, b_var)
    if block_size < 1:
        raise DataValidationError(f"block_size must be >= 1, got {block_size}")
    same = x2 is None or x2 is x1
    x1 = _flatten(x1, "x1")
    x2 = x1 if same else _flatten(x2, "x2")  # type: ignore[arg-type]
    if x1.shape[1] != x2.shape[1]:
        raise DataValidationError(f"x1 has {x1.shape[1]} features per sample but x2 has {x2.shape[1]}; flatten both "
                                  "from the same sample shape")
    dtype = torch.promote_types(x1.dtype, x2.dtype)
    x1 = x1.to(dtype)
    x2 = x1 if same else x2.to(dtype)
    q1 = _layer_diags(x1, depth, w_var, b_var)
    q2 = q1 if same else _layer_diags(x2, depth, w_var, b_var)
    n1, n2 = len(x1), len(x2)
    gram = same
    if compile and not _needs_grad(x1, x2):
        fused = _kernels_compiled(x1, x2, q1, q2, depth, w_var, b_var, want_ntk, gram, block_size)
        if fused is not None:
            return fused
    if n1 <= block_size and n2 <= block_size:
        return _tile(x1, x2, q1, q2, depth, w_var, b_var, want_ntk, gram)
    nngp_rows, ntk_rows = [], []
    for i in range(0, n1, block_size):
        rows_nngp, rows_ntk = [], []
        q1_i = [q[i:i + block_size] for q in q1]
        for j in range(0, n2, block_size):
            q2_j = [q[j:j + block_size] for q in q2]
            s, t = _tile(x1[i:i + block_size], x2[j:j + block_size], q1_i, q2_j, depth, w_var, b_var, want_ntk,
                         gram and i == j)
            rows_nngp.append(s)
            if t is not None:
                rows_ntk.append(t)
        nngp_rows.append(torch.cat(rows_nngp, 1))
        if want_ntk:
            ntk_rows.append(torch.cat(rows_ntk, 1))
    return torch.cat(nngp_rows, 0), (torch.cat(ntk_rows, 0) if want_ntk else None)


def fc_nngp(x1: Tensor, x2: Tensor | None = None, *, depth: int = 1, w_var: float = 2.0, b_var: float = 0.01,
            block_size: int = 2048, compile: bool = False) -> Tensor:
    """NNGP kernel (output covariance at initialisation) of a fully-connected ReLU network.

    Args:
        x1: ``(n1, ...)`` inputs, flattened to ``(n1, d)``.
        x2: ``(n2, ...)`` inputs, or ``None`` for ``x1``.
        depth: number of hidden ReLU layers.
        w_var: weight variance ``σ_w²`` (KIP: 2).
        b_var: bias variance ``σ_b²`` (KIP: 0.01).
        block_size: output tile size (memory bound).
        compile: without autograd, fuse the element-wise recursion with ``torch.compile`` (see :func:`fc_kernels`).

    Returns:
        ``(n1, n2)`` kernel matrix in the inputs' floating dtype.
    """
    return fc_kernels(x1, x2, depth=depth, w_var=w_var, b_var=b_var, block_size=block_size, want_ntk=False,
                      compile=compile)[0]


def fc_ntk(x1: Tensor, x2: Tensor | None = None, *, depth: int = 1, w_var: float = 2.0, b_var: float = 0.01,
           block_size: int = 2048, compile: bool = False) -> Tensor:
    """Neural tangent kernel (NTK parameterisation) of a fully-connected ReLU network.

    Args: as :func:`fc_nngp`.

    Returns:
        ``(n1, n2)`` kernel matrix ``Θ(x1_i, x2_j)``.
    """
    ntk = fc_kernels(x1, x2, depth=depth, w_var=w_var, b_var=b_var, block_size=block_size, want_ntk=True,
                     compile=compile)[1]
    assert ntk is not None
    return ntk
