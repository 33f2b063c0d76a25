"""The data summary (synthetic set) that a distillation method learns.

A :class:`Summary` is an ``nn.Module`` whose parameters are what the outer loop optimises: the synthetic samples,
optionally learnable labels and an optional learnable inner learning rate (kept positive through a softplus, so a
large step cannot make it negative and diverge). Hard class assignments are always kept (``labels``) because
matching objectives work class by class.
The preprocessing the samples live in travels with the summary.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ArtifactError, DataValidationError, UnknownNameError
from .preprocessing import Preprocessing

__all__ = ["LabelKind", "Summary", "register_summary_type", "summary_type"]

LabelKind = Literal["hard", "soft", "regression"]
_SUMMARY_TYPES: dict[str, type[Summary]] = {}


def register_summary_type(cls: type[Summary]) -> type[Summary]:
    """Class decorator: make a :class:`Summary` subclass loadable from artifacts by its ``summary_type``."""
    if cls.summary_type in _SUMMARY_TYPES and _SUMMARY_TYPES[cls.summary_type] is not cls:
        raise ValueError(f"summary type {cls.summary_type!r} is already registered")
    _SUMMARY_TYPES[cls.summary_type] = cls
    return cls


def summary_type(name: str) -> type[Summary]:
    if name not in _SUMMARY_TYPES:
        raise UnknownNameError("summary type", name, _SUMMARY_TYPES)
    return _SUMMARY_TYPES[name]


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class Summary(nn.Module):
    """Synthetic samples with labels, an optional learned inner learning rate and their preprocessing.

    Args:
        x: initial synthetic samples ``(n, *sample_shape)``; becomes the learnable parameter ``x``.
        labels: hard class of each sample ``(n,)``.
        num_classes: number of classes.
        label_kind: ``"hard"`` (fixed classes), ``"soft"`` (learnable logits, targets are their softmax) or
            ``"regression"`` (learnable real-valued targets, e.g. KIP's centred one-hot labels).
        label_values: initial soft logits / regression targets ``(n, num_classes)``; derived from ``labels`` when
            omitted.
        learn_lr: also learn a positive inner learning rate (``lr = softplus(raw_lr)``).
        lr_init: the initial inner learning rate.
        preprocessing: the preprocessing the samples are expressed in.

    Shapes:
        ``x``: ``(n, *sample_shape)``; ``labels``: ``(n,)``; ``targets()``: ``(n, num_classes)``.
    """

    summary_type: ClassVar[str] = "dense"

    def __init__(
        self,
        *,
        x: Tensor,
        labels: Tensor,
        num_classes: int,
        label_kind: LabelKind = "hard",
        label_values: Tensor | None = None,
        learn_lr: bool = False,
        lr_init: float = 0.01,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        self._init_labels(n=len(x), labels=labels, num_classes=num_classes, label_kind=label_kind,
                          label_values=label_values, learn_lr=learn_lr, lr_init=lr_init, preprocessing=preprocessing)
        self.x = nn.Parameter(x.detach().clone().float())

    def _init_labels(self, *, n: int, labels: Tensor, num_classes: int, label_kind: LabelKind,
                     label_values: Tensor | None, learn_lr: bool, lr_init: float,
                     preprocessing: Preprocessing | None) -> None:
        """Everything but the samples: labels, learnable label values, the learned learning rate, preprocessing."""
        if labels.dim() != 1 or len(labels) != n:
            raise DataValidationError(f"labels must be (n,) with n = {n} samples, got {tuple(labels.shape)}")
        if label_kind not in ("hard", "soft", "regression"):
            raise UnknownNameError("label kind", str(label_kind), ["hard", "soft", "regression"])
        self.num_classes = num_classes
        self.label_kind: LabelKind = label_kind
        self.preprocessing = preprocessing or Preprocessing()
        self.register_buffer("labels", labels.detach().clone().long())
        self.label_values: nn.Parameter | None = None
        if label_kind != "hard":
            if label_values is None:
                one_hot = F.one_hot(self.labels, num_classes).float()
                label_values = one_hot * 3.0 if label_kind == "soft" else one_hot - 1.0 / num_classes
            self.label_values = nn.Parameter(label_values.detach().clone().float())
        self.raw_lr: nn.Parameter | None = None
        if learn_lr:
            self.raw_lr = nn.Parameter(torch.tensor(_inverse_softplus(lr_init)))

    # -- views -------------------------------------------------------------------------------------------------
    @property
    def budget(self) -> int:
        return len(self.x)

    @property
    def ipc(self) -> int:
        """Samples per class (the smallest class when classes are unbalanced)."""
        return int(torch.bincount(self.labels, minlength=self.num_classes).min())

    @property
    def lr(self) -> Tensor | None:
        """The learned inner learning rate, always positive, or ``None`` when it is not learned."""
        if self.raw_lr is None:
            return None
        # softplus underflows to exactly 0 below raw_lr ~ -104 (float32); keep the rate strictly positive
        return F.softplus(self.raw_lr).clamp_min(torch.finfo(self.raw_lr.dtype).tiny)

    def targets(self) -> Tensor:
        """Training targets ``(n, num_classes)``: one-hot, softmax of the soft logits, or regression values."""
        if self.label_kind == "hard":
            return F.one_hot(self.labels, self.num_classes).to(self.x.dtype)
        assert self.label_values is not None
        return self.label_values.softmax(-1) if self.label_kind == "soft" else self.label_values

    def sample_parameters(self) -> list[nn.Parameter]:
        """The stored tensors the samples are made of (what the outer optimizer moves at ``lr_summary``)."""
        return [self.x]

    def sample_parameter_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """:meth:`sample_parameters` in groups with a factor on the summary learning rate each."""
        return [(self.sample_parameters(), 1.0)]

    def stored_tensors(self) -> dict[str, Tensor]:
        """Every learned tensor of the samples, by name (for float accounting)."""
        return {"x": self.x}

    def storage(self) -> dict[str, Any]:
        """Stored floats and bytes of the samples' tensors, decoded samples per class and the IPC-equivalent
        (stored floats / floats of one sample / classes)."""
        tensors = self.stored_tensors()
        x = self.x
        per_sample = math.prod(x.shape[1:])
        total = sum(int(t.numel()) for t in tensors.values())
        nbytes = sum(int(t.numel() * t.element_size()) for t in tensors.values())
        return {"stored_floats": total, "stored_bytes": nbytes,
                "tensors": {name: int(t.numel()) for name, t in tensors.items()}, "floats_per_sample": per_sample,
                "decoded_per_class": torch.bincount(self.labels, minlength=self.num_classes).tolist(),
                "ipc_equivalent": round(total / per_sample / self.num_classes, 3) if per_sample else None}

    def class_mask(self, c: int) -> Tensor:
        return self.labels == c

    def materialize(self) -> tuple[Tensor, Tensor]:
        """Detached ``(x, targets)`` for training a model on the summary."""
        return self.x.detach(), self.targets().detach()

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.summary_type,
            "num_classes": self.num_classes,
            "label_kind": self.label_kind,
            "budget": self.budget,
            "ipc": self.ipc,
            "learned_lr": None if self.lr is None else float(self.lr.detach()),
        }

    # -- serialisation -----------------------------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        return {"x": self.x.detach().cpu().contiguous(), **self.label_tensors()}

    def label_tensors(self) -> dict[str, Tensor]:
        """The stored tensors besides the samples: ``labels``, and ``label_values`` / ``raw_lr`` when learned."""
        out = {"labels": self.labels.cpu().contiguous()}
        if self.label_values is not None:
            out["label_values"] = self.label_values.detach().cpu().contiguous()
        if self.raw_lr is not None:
            out["raw_lr"] = self.raw_lr.detach().cpu().reshape(1)
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any], preprocessing: Preprocessing) -> Summary:
        try:
            summary = cls(
                x=tensors["x"],
                labels=tensors["labels"],
                num_classes=int(meta["num_classes"]),
                label_kind=meta.get("label_kind", "hard"),
                label_values=tensors.get("label_values"),
                learn_lr="raw_lr" in tensors,
                preprocessing=preprocessing,
            )
        except KeyError as exc:
            raise ArtifactError(f"the artifact lacks {exc}; it is incomplete, re-create it with `distill run`") from exc
        if "raw_lr" in tensors and summary.raw_lr is not None:
            summary.raw_lr.data.copy_(tensors["raw_lr"].reshape(()))
        return summary

    def assert_finite(self) -> None:
        for name, p in self.named_parameters():
            if not torch.isfinite(p).all():
                raise FloatingPointError(f"summary parameter {name!r} has non-finite values")


register_summary_type(Summary)
