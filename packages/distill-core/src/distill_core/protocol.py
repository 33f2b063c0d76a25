"""What an evaluation was and what it found: :class:`EvalProtocol` (stored with every result) and
:class:`EvalResult`. A module of its own at the bottom of the core, so that modalities can name protocols without
knowing how evaluation runs."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["KRR_MODELS", "EvalProtocol", "EvalResult"]

#: evaluation "models" that are kernel ridge regression with the summary as support set (the survey's second column)
KRR_MODELS = ("krr", "krr:fc_ntk", "krr:fc_nngp")


@dataclass
class EvalProtocol:
    """How a summary is evaluated. Stored with every result.

    Args:
        model: architecture name resolved by the modality (``"convnet"``, ``"mlp"``, ``"gcn"``, ...).
        model_kwargs: extra keyword arguments of the architecture.
        epochs: training epochs over the summary.
        lr: initial learning rate (ignored when ``use_learned_lr`` and the summary learned one).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        batch_size: minibatch size over the summary.
        schedule: ``"step_half"`` (x0.1 after half the epochs, as the papers) or ``"constant"``.
        augment: augmentation name resolved by the modality, or ``None``.
        n_models: fresh models trained and tested (>= 3 by default: one model's accuracy varies by a point or more
            between seeds).
        use_learned_lr: train with the summary's learned inner learning rate (DD's native protocol).
        selection: ``"final"`` (the model after the last epoch is tested; no test-set peeking).
        regression_loss: how a summary with real-valued (``"regression"``, e.g. KIP/RFAD) targets trains a network:
            ``"ce_argmax"`` (cross-entropy on each target's argmax class; the default, because 0.5 * MSE at the
            SGD settings above costs ~17 points on Fashion-MNIST even for real images with one-hot targets) or
            ``"mse"`` (0.5 * squared error on the targets, as KIP's finite-network transfer).
        init: parameter initialisation of each fresh model: ``"default"`` (the framework's) or ``"xavier"``
            (Xavier-normal weights, zero biases: DD's native protocol, Wang et al. 2018).
    """

    model: str = "convnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    schedule: str = "step_half"
    augment: str | None = None
    n_models: int = 3
    use_learned_lr: bool = False
    selection: str = "final"
    regression_loss: str = "ce_argmax"
    init: str = "default"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EvalProtocol:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def with_(self, **changes: Any) -> EvalProtocol:
        return replace(self, **changes)


@dataclass
class EvalResult:
    """Accuracies (in %) of ``n_models`` fresh models, with the protocol that produced them."""

    accuracies: list[float]
    protocol: EvalProtocol
    label_kind: str
    wall_s: float
    seed: int
    metric: str = "accuracy"  # what ``accuracies`` hold: test accuracy in %, or e.g. nDCG@10 for recommenders

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "accuracy_mean": round(self.mean, 3),
            "accuracy_std": round(self.std, 3),
            "accuracies": [round(a, 3) for a in self.accuracies],
            "protocol": self.protocol.to_dict(),
            "labels": self.label_kind,
            "wall_s": round(self.wall_s, 2),
            "seed": self.seed,
        }

    def __str__(self) -> str:
        unit = " %" if self.metric == "accuracy" else ""
        return f"{self.mean:.2f} +- {self.std:.2f}{unit} ({len(self.accuracies)} x {self.protocol.model})"
