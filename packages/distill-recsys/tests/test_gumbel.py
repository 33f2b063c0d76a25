from __future__ import annotations

import torch
import torch.nn.functional as F

from distill_recsys.gumbel import gumbel_noise_exponent, multi_gumbel_softmax


def _naive(logits: torch.Tensor, seed: int, draws: int, tau: float, chunk: int) -> torch.Tensor:
    """Plain autograd version with the same noise stream (keeps every draw in the graph)."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros_like(logits)
    for start in range(0, draws, chunk):
        m = min(chunk, draws - start)
        noise = -gumbel_noise_exponent((m, *logits.shape), gen, dtype=logits.dtype, device=logits.device)
        total = total + torch.softmax((logits[None] + noise) / tau, -1).sum(0)
    return F.hardtanh(total, -1, 1)


def test_forward_and_gradient_match_autograd_through_every_draw():
    torch.manual_seed(0)
    logits = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, 9, dtype=torch.float64)
    ours = multi_gumbel_softmax(logits, num_per_user=7, tau=2.0, seed=5, chunk=3)
    ref = _naive(logits, 5, 7, 2.0, 3)
    assert torch.allclose(ours, ref)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), logits)
    (g_ref,) = torch.autograd.grad((ref * weights).sum(), logits)
    assert torch.allclose(g_ours, g_ref, atol=1e-10)
    # without the draw cache the noise is regenerated from the seed: the same gradient
    again = multi_gumbel_softmax(logits, num_per_user=7, tau=2.0, seed=5, chunk=3, cache_bytes=0)
    (g_regen,) = torch.autograd.grad((again * weights).sum(), logits)
    assert torch.allclose(g_regen, g_ref, atol=1e-10)


def test_noise_is_standard_gumbel():
    gen = torch.Generator().manual_seed(0)
    g = -gumbel_noise_exponent((200_000,), gen, dtype=torch.float32, device=torch.device("cpu"))
    assert torch.isfinite(g).all()
    assert abs(float(g.mean()) - 0.5772) < 0.01 and abs(float(g.var()) - torch.pi ** 2 / 6) < 0.03


def test_seeded_clipped_and_rescaled_draws():
    logits = torch.zeros(3, 2000)
    logits[:, :5] = 40.0  # a few strongly preferred items get most of the mass and clip at 1
    a = multi_gumbel_softmax(logits, num_per_user=200, tau=10.0, seed=1)
    assert torch.equal(a, multi_gumbel_softmax(logits, num_per_user=200, tau=10.0, seed=1))
    assert not torch.equal(a, multi_gumbel_softmax(logits, num_per_user=200, tau=10.0, seed=2))
    assert a.min() > 0 and a.max() == 1.0 and (a[:, :5] == 1.0).all()  # τ = 10: all entries positive; clipped
    # pre-clip rows sum to num_per_user
    raw = multi_gumbel_softmax(logits, num_per_user=200, tau=10.0, seed=1, clip=False)
    assert torch.allclose(raw.sum(1), torch.full((3,), 200.0), rtol=1e-4)
    fewer = multi_gumbel_softmax(logits, num_per_user=200, tau=10.0, seed=1, draws=20, clip=False)
    assert torch.allclose(fewer.sum(1), torch.full((3,), 200.0), rtol=1e-4)  # rescaled to the same row sum
