"""The KRR evaluation column: the summary used as the support set of kernel ridge regression, scored on the real
test set (KIP, Nguyen et al. 2021, https://arxiv.org/abs/2011.00050; RFAD and FRePO report it too).

Support targets are the summary's training targets, centred as in KIP: regression labels as they are, one-hot or
soft-label probabilities minus ``1 / num_classes``. The prediction is ``argmax`` of the KRR output. Test kernels
are computed in blocks (memory flat in the test-set size).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .data import RealData
from .errors import DataValidationError, UnknownNameError
from .kernels import fc_nngp, fc_ntk
from .objectives.krr import KernelFn, krr_predict_blocked
from .synset import Summary

__all__ = ["KRRResult", "evaluate_krr", "kernel_from_name", "krr_support_targets", "one_hot_centred"]

logger = logging.getLogger(__name__)

_NAMED = {"fc_ntk": fc_ntk, "fc_nngp": fc_nngp}


def kernel_from_name(name: str, **kwargs: Any) -> KernelFn:
    """A named analytic kernel: ``"fc_ntk"`` or ``"fc_nngp"`` with options such as ``depth``, ``w_var``,
    ``b_var``."""
    if name not in _NAMED:
        raise UnknownNameError("kernel", name, _NAMED)
    return partial(_NAMED[name], **kwargs)


def krr_support_targets(summary: Summary) -> Tensor:
    """Centred targets ``(n, C)`` of the summary for KRR (see the module docstring)."""
    targets = summary.targets().detach()
    if summary.label_kind == "regression":
        return targets
    return targets - 1.0 / summary.num_classes


@dataclass
class KRRResult:
    """KRR test accuracy (%) of a summary with one kernel."""

    accuracy: float
    kernel: str
    reg: float
    n_support: int
    n_test: int
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        return {"krr_accuracy": round(self.accuracy, 3), "kernel": self.kernel, "reg": self.reg,
                "n_support": self.n_support, "n_test": self.n_test, "wall_s": round(self.wall_s, 2)}


@torch.no_grad()
def evaluate_krr(
    summary: Summary,
    data: RealData,
    kernel_fn: KernelFn | str = "fc_ntk",
    *,
    kernel_name: str | None = None,
    reg: float = 1e-6,
    float64: bool = True,
    block_size: int = 1024,
    max_test: int | None = None,
    device: torch.device | str = "cpu",
) -> KRRResult:
    """KRR accuracy of ``summary`` (as support set) on ``data``'s test split.

    Args:
        summary: the summary; its preprocessing must equal the data's.
        data: real data (only the test split is used).
        kernel_fn: ``kernel_fn(a, b) -> (len(a), len(b))`` or a name for :func:`kernel_from_name`.
        kernel_name: recorded name (defaults to the kernel's name).
        reg: ridge, relative to the support kernel's mean diagonal (KIP: 1e-6).
        float64: solve in double precision.
        block_size: test samples per kernel block.
        max_test: score only the first ``max_test`` test samples (``None``: all).
        device: where kernels are computed.

    Returns:
        A :class:`KRRResult`.
    """
    if not summary.preprocessing.same_as(data.preprocessing):
        raise DataValidationError(
            f"the summary was distilled in preprocessing {summary.preprocessing.kinds or ['none']} but the test "
            f"data uses {data.preprocessing.kinds or ['none']}; load the test data with the artifact's preprocessing")
    if isinstance(kernel_fn, str):
        kernel_name = kernel_name or kernel_fn
        kernel_fn = kernel_from_name(kernel_fn)
    kernel_name = kernel_name or getattr(kernel_fn, "__name__", "custom")
    device = torch.device(device)
    start = time.perf_counter()
    x_s = summary.x.detach().to(device)
    if tuple(x_s.shape[1:]) != data.sample_shape:
        raise DataValidationError(f"summary samples have shape {tuple(x_s.shape[1:])} but the data "
                                  f"{data.sample_shape}")
    y_s = krr_support_targets(summary).to(device)
    x_t, y_t = data.x_test, data.y_test
    if max_test is not None:
        x_t, y_t = x_t[:max_test], y_t[:max_test]
    pred = krr_predict_blocked(kernel_fn, x_s, y_s, x_t, block_size=block_size, reg=reg, float64=float64)
    acc = 100.0 * float((pred.argmax(-1).cpu() == y_t).float().mean()) if len(y_t) else 0.0
    result = KRRResult(acc, kernel_name, reg, len(x_s), len(y_t), time.perf_counter() - start)
    logger.info("KRR (%s) accuracy %.2f%% with %d support samples", kernel_name, acc, len(x_s))
    return result


def one_hot_centred(labels: Tensor, num_classes: int) -> Tensor:
    """KIP's label encoding ``one_hot(labels) - 1 / num_classes``."""
    return F.one_hot(labels, num_classes).float() - 1.0 / num_classes
