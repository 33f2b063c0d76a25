"""Multi-draw Gumbel-softmax sampling of interactions per synthetic user, with a memory-light backward.

Distill-CF (Sachdeva et al. 2022, https://arxiv.org/abs/2206.02626) turns each row of the logit matrix into a
sampled user by summing ``num_per_user`` Gumbel-softmax draws over the items,
``S = hardtanh(Σ_s softmax((logits + g_s) / τ))``, with gradients through every draw. Autograd would keep all
``draws x budget x n_items`` softmax outputs; :class:`MultiGumbelSoftmax` keeps only the seed and regenerates the
noise chunk by chunk in the backward pass, so memory is ``O(chunk x budget x n_items)`` whatever the draw count.

``draws`` below ``num_per_user`` gives a cheaper estimate rescaled by ``num_per_user / draws`` (same expectation
before the clip, more variance); the paper's procedure is ``draws == num_per_user``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MultiGumbelSoftmax", "multi_gumbel_softmax"]


def _draw_chunks(logits: Tensor, seed: int, draws: int, tau: float, chunk: int):  # type: ignore[no-untyped-def]
    gen = torch.Generator(device=logits.device).manual_seed(seed)
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        noise = torch.empty((m, *logits.shape), dtype=logits.dtype, device=logits.device)
        noise.exponential_(generator=gen).log_().neg_()  # Gumbel(0, 1) = -log(Exp(1))
        yield torch.softmax((noise + logits[None]) / tau, dim=-1)


class MultiGumbelSoftmax(torch.autograd.Function):
    """``scale · Σ_{s < draws} softmax((logits + g_s) / τ)`` with the noise regenerated from ``seed`` in backward."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, seed: int, draws: int, tau: float, scale: float,  # type: ignore[override]
                chunk: int) -> Tensor:
        out = torch.zeros_like(logits)
        with torch.no_grad():
            for probs in _draw_chunks(logits, seed, draws, tau, chunk):
                out += probs.sum(0)
        ctx.save_for_backward(logits)
        ctx.params = (seed, draws, tau, scale, chunk)
        return out * scale

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        (logits,) = ctx.saved_tensors
        seed, draws, tau, scale, chunk = ctx.params
        grad = torch.zeros_like(logits)
        with torch.no_grad():
            for probs in _draw_chunks(logits, seed, draws, tau, chunk):
                # softmax VJP: p ⊙ (g - <g, p>), summed over the draws
                inner = (probs * grad_out[None]).sum(-1, keepdim=True)
                grad += (probs * (grad_out[None] - inner)).sum(0)
        return grad * (scale / tau), None, None, None, None, None


def multi_gumbel_softmax(logits: Tensor, *, num_per_user: int, tau: float, seed: int, draws: int | None = None,
                         chunk: int = 8, clip: bool = True) -> Tensor:
    """Sampled users ``hardtanh(Σ_s softmax((logits + g_s)/τ))`` (Distill-CF's multi-Gumbel sampling).

    Args:
        logits: ``(budget, n_items)`` learnable logits.
        num_per_user: Gumbel-softmax draws summed per row (the paper's 200).
        tau: temperature (the paper's 10).
        seed: seed of the noise (the same seed gives the same sample).
        draws: draws actually taken (default ``num_per_user``); fewer are rescaled to the same expected sum.
        chunk: draws generated at once (memory ``chunk x budget x n_items``).
        clip: apply the hard-tanh clip to ``[-1, 1]`` as the paper.

    Returns:
        ``(budget, n_items)`` sampled users, differentiable in ``logits``.
    """
    draws = num_per_user if draws is None else draws
    if draws < 1 or num_per_user < 1 or tau <= 0:
        raise ValueError(f"need num_per_user >= 1, draws >= 1 and tau > 0, got {num_per_user}, {draws}, {tau}")
    out = MultiGumbelSoftmax.apply(logits, seed, draws, float(tau), num_per_user / draws, chunk)
    return F.hardtanh(out, -1.0, 1.0) if clip else out
