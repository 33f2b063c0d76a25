"""Classification pieces shared by the methods with inner networks: soft cross-entropy and training a network on
the summary for a few epochs (DC's inner loop, GCond's and text-GM's backbone updates)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["soft_cross_entropy", "train_on_summary"]


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy against label distributions: ``-(targets * log_softmax(logits)).sum(-1).mean()``.

    Equals ``F.cross_entropy(logits, y)`` when ``targets`` are the one-hot rows of ``y``.

    Shapes:
        logits: ``(n, C)``; targets: ``(n, C)`` (rows of probabilities or one-hot); returns a 0-d tensor.
    """
    return -(targets * F.log_softmax(logits, -1)).sum(-1).mean()


def train_on_summary(
    net: nn.Module,
    x: Tensor,
    targets: Tensor,
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    augment: Callable[[Tensor], Tensor] | None = None,
) -> None:
    """``epochs`` epochs of minibatch training of ``net`` on ``(x, targets)`` with :func:`soft_cross_entropy`.

    Each epoch draws one permutation from ``generator`` (on the CPU, then moved to ``x``'s device), so a seeded
    run repeats exactly. ``x`` and ``targets`` are detached: the summary is not updated here.

    Shapes:
        x: ``(n, *sample_shape)``; targets: ``(n, C)``.
    """
    x, targets = x.detach(), targets.detach()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            xb = x[idx] if augment is None else augment(x[idx])
            loss = soft_cross_entropy(net(xb), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
