r"""Kernel ridge regression: the closed-form inner solve of KIP, RFAD, FRePO and Distill-CF.

Given support samples with targets :math:`Y_s` and a kernel, the predictions on target samples are

.. math::

    \hat Y_t = K_{ts} (K_{ss} + \lambda I)^{-1} Y_s, \qquad \lambda = \text{reg} \cdot \operatorname{tr}(K_{ss}) / n_s

(the regulariser relative to the kernel's scale as in KIP, Nguyen et al. 2021, https://arxiv.org/abs/2011.00050,
and ∞-AE/Distill-CF; ``relative=False`` uses ``reg`` as is). The solve is a Cholesky factorisation; if the matrix is
numerically singular or indefinite (duplicate support points, a zero regulariser), a growing *jitter* (relative to
the mean diagonal) is added and a warning is logged; when even the largest jitter fails, :class:`SingularKernelError`
says what to change. Non-finite kernels also raise it. Results are never NaN.

:class:`SingularKernelError` is a :class:`~distill_core.errors.DataValidationError` *and* a
:class:`FloatingPointError`, so inside the outer loop the distiller rolls back to the last good step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import torch
from torch import Tensor

from ..errors import DataValidationError
from ..method import MethodConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_JITTER",
    "KRRSolveOptions",
    "KernelRegressionConfig",
    "KernelFn",
    "SingularKernelError",
    "blocked_kernel",
    "krr_loss",
    "krr_predict",
    "krr_predict_blocked",
    "krr_regularizer",
    "krr_solve",
]

logger = logging.getLogger(__name__)

KernelFn = Callable[[Tensor, Tensor], Tensor]
#: Jitter schedule, as multiples of the mean diagonal, tried in order after the plain regularised solve fails.
DEFAULT_JITTER: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


@dataclass
class KernelRegressionConfig(MethodConfig):
    """The options every KRR-based image method shares (KIP, RFAD, FRePO): Adam over a support set with centred
    one-hot regression targets, solved against real target batches."""

    defaults = {"optimizer": "adam", "label_kind": "regression"}
    learn_labels: bool = field(default=False, metadata={"help": "also learn the support labels"})
    reg: float = field(default=1e-6, metadata={"help": "KRR ridge, relative to trace(K_ss)/n"})
    float64: bool = field(default=True, metadata={"help": "solve the KRR system in float64"})


class KRRSolveOptions(TypedDict, total=False):
    """The options of the regularised solve (:func:`krr_solve`, which holds their defaults), taken by every function
    here that solves: ``reg``, ``relative``, ``float64``, ``jitter``."""

    reg: float
    relative: bool
    float64: bool
    jitter: Sequence[float]


class SingularKernelError(DataValidationError, FloatingPointError):
    """The support kernel cannot be factorised even with the largest jitter, or has non-finite entries."""


def krr_regularizer(k_ss: Tensor, reg: float, *, relative: bool = True) -> Tensor:
    """The ridge ``λ``: ``reg · trace(K_ss) / n`` when ``relative`` else ``reg`` (a 0-d tensor).

    Shapes:
        k_ss: ``(n, n)``; returns a 0-d tensor.
    """
    if reg < 0:
        raise DataValidationError(f"the ridge regulariser must be >= 0, got reg={reg}")
    if relative:
        return reg * torch.diagonal(k_ss).mean()
    return k_ss.new_tensor(reg)


def _validate(k_ss: Tensor, y_s: Tensor) -> None:
    if k_ss.dim() != 2 or k_ss.shape[0] != k_ss.shape[1]:
        raise DataValidationError(f"the support kernel must be square (n, n), got {tuple(k_ss.shape)}")
    if y_s.dim() not in (1, 2) or len(y_s) != len(k_ss):
        raise DataValidationError(f"support targets must be (n,) or (n, c) with n = {len(k_ss)}, got "
                                  f"{tuple(y_s.shape)}")
    if not torch.isfinite(k_ss.detach()).all():
        raise SingularKernelError("the support kernel has non-finite entries (NaN/inf): the summary or the kernel "
                                  "inputs diverged; lower the summary learning rate or check the data")


def _factor(a: Tensor, jitter: Sequence[float]) -> tuple[Tensor, float]:
    """Cholesky factor of ``a`` (+ the first jitter that makes it well conditioned); returns ``(L, jitter_used)``."""
    n = len(a)
    scale = float(torch.diagonal(a.detach()).mean().abs().clamp_min(torch.finfo(a.dtype).tiny))
    # (min pivot / max pivot)^2 estimates 1 / cond(a); below n * eps the solve is rounding noise
    min_rcond = n * torch.finfo(a.dtype).eps
    for amount in (0.0, *jitter):
        candidate = a
        if amount > 0.0:
            candidate = a.clone()
            candidate.diagonal().add_(amount * scale)
        chol, info = torch.linalg.cholesky_ex(candidate)
        if int(info) == 0:
            piv = torch.diagonal(chol.detach())
            if bool(torch.isfinite(piv).all()) and float((piv.min() / piv.max()) ** 2) > min_rcond:
                if amount > 0.0:
                    logger.warning("kernel ridge regression: the support kernel is (numerically) singular; added "
                                   "jitter %.1e x mean diagonal. Duplicate support samples or reg=0 cause this; "
                                   "float64=True avoids it for ill-conditioned kernels.", amount)
                return chol, amount
    raise SingularKernelError(
        f"the support kernel ({n} x {n}) is singular or indefinite even with jitter {max(jitter, default=0):g} x "
        "its mean diagonal: remove duplicate support samples, use a positive regulariser (reg > 0), or enable "
        "float64=True")


def krr_solve(
    k_ss: Tensor,
    y_s: Tensor,
    *,
    reg: float = 1e-6,
    relative: bool = True,
    float64: bool = False,
    jitter: Sequence[float] = DEFAULT_JITTER,
) -> Tensor:
    """Dual coefficients ``α = (K_ss + λI)^{-1} Y_s`` (differentiable in ``K_ss`` and ``Y_s``).

    Args:
        k_ss: support kernel ``(n, n)``, symmetric positive semi-definite.
        y_s: support targets ``(n, c)`` or ``(n,)``.
        reg: ridge regulariser (relative to ``trace(K)/n`` when ``relative``).
        relative: scale ``reg`` by the mean diagonal of ``K_ss``.
        float64: solve in double precision (the result is cast back to ``y_s``'s dtype).
        jitter: extra diagonal amounts (multiples of the mean diagonal) tried in order when the solve is singular.

    Returns:
        ``α`` with the shape of ``y_s``.

    Raises:
        SingularKernelError: non-finite kernel, or singular even with the largest jitter.

    Shapes:
        k_ss: ``(n, n)``; y_s: ``(n, C)``; returns alpha ``(n, C)``.
    """
    _validate(k_ss, y_s)
    out_dtype = torch.promote_types(k_ss.dtype, y_s.dtype)
    work = torch.float64 if float64 else out_dtype
    k = k_ss.to(work)
    a = k.clone()  # only the lower triangle is read by the factorisation
    a.diagonal().add_(krr_regularizer(k, reg, relative=relative))
    chol, _ = _factor(a, jitter)
    y = y_s.to(work)
    alpha = torch.cholesky_solve(y if y.dim() == 2 else y[:, None], chol)
    return (alpha if y.dim() == 2 else alpha[:, 0]).to(out_dtype)


def krr_predict(k_ts: Tensor, k_ss: Tensor, y_s: Tensor, **solve: Unpack[KRRSolveOptions]) -> Tensor:
    """KRR predictions ``K_ts (K_ss + λI)^{-1} Y_s``; ``solve`` as :func:`krr_solve`.

    Shapes:
        k_ts: ``(m, n)``; k_ss: ``(n, n)``; y_s: ``(n, c)``; returns ``(m, c)``.
    """
    if k_ts.dim() != 2 or k_ts.shape[1] != len(k_ss):
        raise DataValidationError(f"the target-support kernel must be (m, {len(k_ss)}), got {tuple(k_ts.shape)}")
    alpha = krr_solve(k_ss, y_s, **solve)
    return k_ts.to(alpha.dtype) @ alpha


def krr_loss(k_ts: Tensor, k_ss: Tensor, y_s: Tensor, y_t: Tensor, **solve: Unpack[KRRSolveOptions]) -> Tensor:
    """KIP's outer loss ``0.5 · mean((K_ts (K_ss + λI)^{-1} Y_s − Y_t)²)`` (mean over all entries); ``solve`` as
    :func:`krr_solve`.

    Shapes:
        k_ts: ``(m, n)``; k_ss: ``(n, n)``; y_s: ``(n, c)``; y_t: ``(m, c)``; returns a scalar.
    """
    pred = krr_predict(k_ts, k_ss, y_s, **solve)
    if pred.shape != y_t.shape:
        raise DataValidationError(f"target labels have shape {tuple(y_t.shape)} but predictions {tuple(pred.shape)}")
    return 0.5 * ((pred - y_t.to(pred.dtype)) ** 2).mean()


def blocked_kernel(kernel_fn: KernelFn, x1: Tensor, x2: Tensor, *, block_size: int = 1024) -> Tensor:
    """``kernel_fn(x1, x2)`` assembled from row blocks of ``x1`` (memory of one block's intermediates at a time).

    Shapes:
        x1: ``(n1, ...)``; x2: ``(n2, ...)``; returns ``(n1, n2)``.
    """
    if block_size < 1:
        raise DataValidationError(f"block_size must be >= 1, got {block_size}")
    return torch.cat([kernel_fn(x1[i:i + block_size], x2) for i in range(0, len(x1), block_size)], 0)


def krr_predict_blocked(kernel_fn: KernelFn, x_s: Tensor, y_s: Tensor, x_t: Tensor, *, block_size: int = 1024,
                        **solve: Unpack[KRRSolveOptions]) -> Tensor:
    """KRR predictions for a large target set: the support is solved once, the target-support kernel is built and
    used one block of ``block_size`` targets at a time, so memory does not grow with the number of targets (beyond
    the ``(m, c)`` predictions themselves).

    Args:
        kernel_fn: ``kernel_fn(a, b) -> (len(a), len(b))``.
        x_s: support samples ``(n, ...)``; y_s: support targets ``(n, c)``.
        x_t: target samples ``(m, ...)`` (may live on the CPU; each block is moved to ``x_s``'s device).
        block_size: targets per block.
        solve: ``reg``, ``relative``, ``float64``, ``jitter`` of :func:`krr_solve`.

    Returns:
        ``(m, c)`` predictions on ``x_s``'s device.

    Shapes:
        x_s: ``(n, ...)``; y_s: ``(n, C)``; x_t: ``(m, ...)``; returns ``(m, C)``.
    """
    if block_size < 1:
        raise DataValidationError(f"block_size must be >= 1, got {block_size}")
    alpha = krr_solve(kernel_fn(x_s, x_s), y_s, **solve)
    preds = []
    for i in range(0, len(x_t), block_size):
        block = x_t[i:i + block_size].to(x_s.device, non_blocking=True)
        preds.append(kernel_fn(block, x_s).to(alpha.dtype) @ alpha)
    return torch.cat(preds, 0) if preds else alpha.new_zeros((0, *alpha.shape[1:]))
