"""Preprocessing that travels with the data: fitted on the training split, stored in the artifact, applied to
test data automatically and inverted for display (a ZCA-whitened summary scored against un-whitened test data is
the classic silent error of the reference scripts).

A :class:`Preprocessing` is an ordered list of steps. Each step is fitted on training data only, serialises to a
JSON-able description plus tensors, and can be inverted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from .errors import ArtifactError, UnknownNameError

__all__ = ["ChannelNormalization", "Preprocessing", "PreprocessingStep", "ZCAWhitening"]

_STEP_TYPES: dict[str, type[PreprocessingStep]] = {}


class PreprocessingStep:
    """One invertible transform of samples shaped ``(N, C, ...)``."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _STEP_TYPES[cls.kind] = cls

    def apply(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def invert(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        """JSON-able description stored in the manifest."""
        return {"kind": self.kind}

    def tensors(self) -> dict[str, Tensor]:
        return {}

    @classmethod
    def restore(cls, meta: dict[str, object], tensors: dict[str, Tensor]) -> PreprocessingStep:
        raise NotImplementedError


class ChannelNormalization(PreprocessingStep):
    """Per-channel ``(x - mean) / std`` with statistics of the training split.

    Shapes:
        mean, std: ``(C,)``; inputs ``(N, C, *spatial)``.
    """

    kind = "channel_normalization"

    def __init__(self, *, mean: Tensor, std: Tensor) -> None:
        self.mean = mean.detach().float().flatten()
        self.std = std.detach().float().flatten().clamp_min(1e-8)

    @classmethod
    def fit(cls, x_train: Tensor) -> ChannelNormalization:
        dims = [0, *range(2, x_train.dim())]
        return cls(mean=x_train.float().mean(dim=dims), std=x_train.float().std(dim=dims))

    def _view(self, t: Tensor, x: Tensor) -> Tensor:
        return t.to(device=x.device, dtype=x.dtype).view(1, -1, *([1] * (x.dim() - 2)))

    def apply(self, x: Tensor) -> Tensor:
        return (x - self._view(self.mean, x)) / self._view(self.std, x)

    def invert(self, x: Tensor) -> Tensor:
        return x * self._view(self.std, x) + self._view(self.mean, x)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def restore(cls, meta: dict[str, object], tensors: dict[str, Tensor]) -> ChannelNormalization:
        return cls(mean=torch.tensor(meta["mean"]), std=torch.tensor(meta["std"]))


class ZCAWhitening(PreprocessingStep):
    """ZCA whitening ``x -> (x - mu) W`` with ``W = U (S + reg * tr(S)/d)^{-1/2} U^T`` of the training covariance
    (as in KIP/MTT, regulariser relative to the mean eigenvalue).

    Shapes:
        mean: ``(D,)``; whiten, unwhiten: ``(D, D)`` with ``D = C * H * W``.
    """

    kind = "zca"

    def __init__(self, *, mean: Tensor, whiten: Tensor, unwhiten: Tensor, reg: float) -> None:
        self.mean, self.whiten, self.unwhiten, self.reg = mean, whiten, unwhiten, reg

    @classmethod
    def fit(cls, x_train: Tensor, *, reg: float = 0.1) -> ZCAWhitening:
        flat = x_train.reshape(len(x_train), -1).double()
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / len(flat)
        evals, evecs = torch.linalg.eigh(cov)
        evals = evals.clamp_min(0) + reg * evals.clamp_min(0).mean()
        whiten = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
        unwhiten = evecs @ torch.diag(evals.sqrt()) @ evecs.T
        return cls(mean=mean.float(), whiten=whiten.float(), unwhiten=unwhiten.float(), reg=reg)

    def apply(self, x: Tensor) -> Tensor:
        flat = x.reshape(len(x), -1) - self.mean.to(x)
        return (flat @ self.whiten.to(x)).reshape(x.shape)

    def invert(self, x: Tensor) -> Tensor:
        flat = x.reshape(len(x), -1) @ self.unwhiten.to(x)
        return (flat + self.mean.to(x)).reshape(x.shape)

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind, "reg": self.reg}

    def tensors(self) -> dict[str, Tensor]:
        return {"mean": self.mean, "whiten": self.whiten, "unwhiten": self.unwhiten}

    @classmethod
    def restore(cls, meta: dict[str, object], tensors: dict[str, Tensor]) -> ZCAWhitening:
        return cls(mean=tensors["mean"], whiten=tensors["whiten"], unwhiten=tensors["unwhiten"],
                   reg=float(meta["reg"]))  # type: ignore[arg-type]


@dataclass
class Preprocessing:
    """An ordered list of fitted steps; ``apply`` runs them in order, ``invert`` in reverse."""

    steps: list[PreprocessingStep] = field(default_factory=list)

    def apply(self, x: Tensor) -> Tensor:
        for step in self.steps:
            x = step.apply(x)
        return x

    def invert(self, x: Tensor) -> Tensor:
        for step in reversed(self.steps):
            x = step.invert(x)
        return x

    @property
    def kinds(self) -> list[str]:
        return [step.kind for step in self.steps]

    @property
    def whitened(self) -> bool:
        return "zca" in self.kinds

    def describe(self) -> list[dict[str, object]]:
        return [step.describe() for step in self.steps]

    def tensors(self) -> dict[str, Tensor]:
        """Tensors of all steps, keyed ``preprocessing.<index>.<name>``."""
        return {f"preprocessing.{i}.{k}": v.contiguous() for i, s in enumerate(self.steps)
                for k, v in s.tensors().items()}

    @classmethod
    def restore(cls, described: Sequence[dict[str, object]], tensors: dict[str, Tensor]) -> Preprocessing:
        steps: list[PreprocessingStep] = []
        for i, meta in enumerate(described):
            kind = str(meta.get("kind"))
            if kind not in _STEP_TYPES:
                raise UnknownNameError("preprocessing step", kind, _STEP_TYPES)
            prefix = f"preprocessing.{i}."
            own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                steps.append(_STEP_TYPES[kind].restore(meta, own))
            except KeyError as exc:
                raise ArtifactError(f"preprocessing step {i} ({kind}) lacks {exc}; the artifact is incomplete, "
                                    "re-create it with `distill run`") from exc
        return cls(steps)

    def same_as(self, other: Preprocessing) -> bool:
        """True when both pipelines transform data identically (same kinds and parameters)."""
        if self.describe() != other.describe():
            return False
        mine, theirs = self.tensors(), other.tensors()
        return mine.keys() == theirs.keys() and all(torch.allclose(mine[k], theirs[k]) for k in mine)
