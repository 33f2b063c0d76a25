"""Training and scoring a classifier on a summary: the inner part of the evaluation protocol, below the modality
interface (a modality's default :meth:`~distill_core.modality.Modality.fit_and_score` uses it)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import UnknownNameError
from .objectives.classification import soft_cross_entropy
from .protocol import EvalProtocol

__all__ = ["INITS", "accuracy", "init_model_", "train_classifier", "xavier_init_"]

Augment = Callable[[Tensor, torch.Generator], Tensor]


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
