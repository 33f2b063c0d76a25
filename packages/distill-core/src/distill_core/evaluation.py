"""The evaluation protocol: train fresh models on a summary, test them on the real test set.

Follows ``evaluate_synset`` of the DC/DSA/DM reference implementation (VICO-UoE/DatasetCondensation, utils.py):
SGD with momentum 0.9 and weight decay 5e-4, learning rate x0.1 after half the epochs, batch 256, optional
(non-Siamese) augmentation, several fresh models, mean +- std. The protocol is a dataclass stored next to every
result, so a number is never separated from how it was obtained; results state the label kind, augmentation and
epochs, which change accuracies by several points between papers.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import RealData
from .errors import DataValidationError, UnknownNameError
from .objectives.classification import soft_cross_entropy
from .runtime import retain_freed_memory
from .synset import Summary

if TYPE_CHECKING:
    from .modality import Modality

__all__ = [
    "EvalProtocol", "EvalResult", "accuracy", "evaluate_cross_architecture", "evaluate_summary", "train_classifier",
]

logger = logging.getLogger(__name__)
Augment = Callable[[Tensor, torch.Generator], Tensor]


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


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 1024) -> float:
    """Top-1 accuracy in percent of ``model`` on ``(x, y)``, evaluated in batches in eval mode."""
    model.eval()
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = model(x[start:start + batch_size])
        correct += int((logits.argmax(-1) == y[start:start + batch_size]).sum())
    return 100.0 * correct / max(1, len(x))


def _loss(logits: Tensor, targets: Tensor, label_kind: str, regression_loss: str = "ce_argmax") -> Tensor:
    if label_kind == "regression":
        if regression_loss == "mse":
            return 0.5 * ((logits - targets) ** 2).sum(-1).mean()
        if regression_loss != "ce_argmax":
            raise UnknownNameError("regression_loss", regression_loss, ["ce_argmax", "mse"])
        return F.cross_entropy(logits, targets.argmax(-1))
    return soft_cross_entropy(logits, targets)  # = cross-entropy for one-hot targets


INITS = ("default", "xavier")

#: evaluation "models" that are kernel ridge regression with the summary as support set (the survey's second column)
KRR_MODELS = ("krr", "krr:fc_ntk", "krr:fc_nngp")


def _evaluate_with_krr(summary: Summary, data: RealData, protocol: EvalProtocol, *, seed: int,
                       device: torch.device | str) -> EvalResult:
    """KRR test accuracy (deterministic: one number whatever ``n_models``) as an :class:`EvalResult`."""
    from .evaluation_krr import evaluate_krr

    if type(summary) is not Summary or not summary.x.is_floating_point():
        raise DataValidationError(f"--model {protocol.model} (kernel ridge regression) needs a summary of dense "
                                  f"feature vectors, not a {summary.summary_type!r} summary; use a trained model")
    kernel = protocol.model.partition(":")[2] or "fc_ntk"
    result = evaluate_krr(summary, data, kernel, device=device)
    return EvalResult([result.accuracy], protocol, summary.label_kind, result.wall_s, seed)


def xavier_init_(model: nn.Module) -> nn.Module:
    """Xavier-normal (gain 1) weights and zero biases for every conv and linear layer, in place (DD's init)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def init_model_(model: nn.Module, init: str) -> nn.Module:
    """Apply the protocol's ``init`` to a freshly built model."""
    if init == "default":
        return model
    if init == "xavier":
        return xavier_init_(model)
    raise UnknownNameError("init", init, INITS)


def train_classifier(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    *,
    label_kind: str,
    protocol: EvalProtocol,
    lr: float | None = None,
    augment: Augment | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Train ``model`` on ``(x, targets)`` with the protocol's optimiser and schedule; returns the model.

    Shapes:
        x: ``(n, *sample_shape)``; targets: ``(n, num_classes)`` probabilities / one-hot / regression targets.
    """
    lr = protocol.lr if lr is None else lr
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay)
    decay_at = protocol.epochs // 2 if protocol.schedule == "step_half" else None
    model.train()
    n = len(x)
    for epoch in range(protocol.epochs):
        if epoch == decay_at:
            for group in opt.param_groups:
                group["lr"] *= 0.1
        order = torch.randperm(n, generator=generator).to(x.device)
        for start in range(0, n, protocol.batch_size):
            idx = order[start:start + protocol.batch_size]
            xb = x[idx]
            if augment is not None:
                xb = augment(xb, generator)  # type: ignore[arg-type]
            loss = _loss(model(xb), targets[idx], label_kind, protocol.regression_loss)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


def evaluate_summary(
    summary: Summary,
    data: RealData,
    *,
    modality: Modality,
    protocol: EvalProtocol,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> EvalResult:
    """Train ``protocol.n_models`` fresh models on the summary and report test accuracy on ``data``.

    Raises:
        DataValidationError: when the summary's preprocessing differs from the test data's (e.g. a ZCA-whitened
            summary against un-whitened test data), or the sample shapes differ.
    """
    custom = modality.evaluate(summary, data, protocol=protocol, seed=seed, device=torch.device(device),
                               progress=progress)
    if custom is not None:
        return custom
    if protocol.n_models < 1:  # (epochs may be 0: closed-form learners such as recsys' train no epochs)
        raise DataValidationError(f"the protocol trains {protocol.n_models} models; ask for at least 1 (--models)")
    if not summary.preprocessing.same_as(data.preprocessing):
        raise DataValidationError(
            f"the summary was distilled in preprocessing {summary.preprocessing.kinds or ['none']} but the test "
            f"data uses {data.preprocessing.kinds or ['none']}; load the test data with the artifact's "
            "preprocessing (`distill eval DIR` does this automatically)"
        )
    if protocol.model in KRR_MODELS:
        return _evaluate_with_krr(summary, data, protocol, seed=seed, device=device)
    x_syn = summary.materialize()[0]
    if tuple(x_syn.shape[1:]) != data.sample_shape:
        raise DataValidationError(f"summary samples have shape {tuple(x_syn.shape[1:])} but the test data "
                                  f"{data.sample_shape}")
    if protocol.init not in INITS:
        raise UnknownNameError("init", protocol.init, INITS)
    device = torch.device(device)
    if device.type == "cpu":
        retain_freed_memory()
    lr = float(summary.lr.detach()) if protocol.use_learned_lr and summary.lr is not None else None
    augment = modality.augmenter(protocol.augment)
    start = time.perf_counter()
    accs: list[float] = []
    for i in tqdm(range(protocol.n_models), desc=f"eval {protocol.model}", disable=not progress, leave=False):
        torch.manual_seed(seed * 10_007 + i)
        generator = torch.Generator().manual_seed(seed * 10_007 + i)
        accs.append(modality.fit_and_score(summary, data, protocol=protocol, lr=lr, augment=augment,
                                           generator=generator, device=device))
        logger.debug("eval model %d: %.2f%%", i, accs[-1])
    return EvalResult(accs, protocol, summary.label_kind, time.perf_counter() - start, seed)


def evaluate_cross_architecture(
    summary: Summary,
    data: RealData,
    *,
    modality: Modality,
    protocols: Sequence[EvalProtocol],
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[EvalResult]:
    """Evaluate the same summary under several protocols (usually one per architecture)."""
    return [evaluate_summary(summary, data, modality=modality, protocol=p, seed=seed, device=device)
            for p in protocols]
