"""Kernels against independent estimates: Monte-Carlo output covariances of wide random nets (NNGP) and the
explicit Jacobian inner products of wide finite nets (NTK), with the tolerances stated per test."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from distill_core.errors import DataValidationError
from distill_core.kernels import (
    RandomFeatureNNGP,
    empirical_ntk,
    fc_kernel_diag,
    fc_kernels,
    fc_nngp,
    fc_ntk,
    random_feature_kernel,
    random_features,
)


def _inputs(n: int = 10, d: int = 7, seed: int = 0) -> Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if n >= 6:
        x[3] = x[2]  # a duplicate: the arc-cosine at cos = 1 must be exact and finite
        x[5] = -x[4]  # an antipodal pair: cos = -1
    return x


def _ntk_param_mlp(d: int, width: int, depth: int, out: int, *, w_var: float = 2.0, b_var: float = 0.01,
                   seed: int = 0) -> nn.Module:
    """A finite MLP in the NTK parameterisation: weights N(0, 1), scaled by sqrt(w_var / fan_in) in the forward."""

    class Dense(nn.Module):
        def __init__(self, fan_in: int, fan_out: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(fan_in, fan_out, dtype=torch.float64))
            self.bias = nn.Parameter(torch.randn(fan_out, dtype=torch.float64))
            self.scale = math.sqrt(w_var / fan_in)

        def forward(self, h: Tensor) -> Tensor:
            return self.scale * h @ self.weight + math.sqrt(b_var) * self.bias

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    fan = d
    for _ in range(depth):
        layers += [Dense(fan, width), nn.ReLU()]
        fan = width
    layers.append(Dense(fan, out))
    return nn.Sequential(*layers)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_nngp_matches_monte_carlo_covariance(depth: int) -> None:
    # 20 random nets x 256 output units = 5120 samples of the output; MC std of a covariance entry ~ sqrt(2/5120)
    # ~ 2% of the diagonal, plus O(1/width) finite-width bias: tolerance 8% of the largest variance (max) and 3%
    # (mean over entries).
    x = _inputs()
    outs = []
    with torch.no_grad():
        for seed in range(20):
            outs.append(_ntk_param_mlp(x.shape[1], 512, depth, 256, seed=seed)(x))
    f = torch.cat(outs, 1)
    empirical = f @ f.T / f.shape[1]
    k = fc_nngp(x, depth=depth)
    err = (empirical - k).abs() / k.diag().max()
    assert err.max() < 0.08 and err.mean() < 0.03, (err.max(), err.mean())


def _empirical_ntk(model: nn.Module, x: Tensor) -> Tensor:
    """Explicit Jacobian inner product of a scalar-output model, one backward pass per input."""
    rows = []
    for xi in x:
        grads = torch.autograd.grad(model(xi[None]).sum(), list(model.parameters()))
        rows.append(torch.cat([g.flatten() for g in grads]))
    jac = torch.stack(rows)
    return jac @ jac.T


@pytest.mark.parametrize("depth", [1, 2])
def test_ntk_matches_wide_finite_net(depth: int) -> None:
    # The empirical NTK of a width-w net fluctuates by O(1/sqrt(w)); averaged over 4 nets of width 1024 the
    # relative error is ~2%: tolerance 6% of the largest diagonal entry (max), 2.5% (mean).
    x = _inputs(8, 5)
    emp = torch.stack([_empirical_ntk(_ntk_param_mlp(5, 1024, depth, 1, seed=s), x) for s in range(4)]).mean(0)
    k = fc_ntk(x, depth=depth)
    err = (emp - k).abs() / k.diag().max()
    assert err.max() < 0.06 and err.mean() < 0.025, (err.max(), err.mean())


def test_depth_one_ntk_is_the_closed_form_infinite_ae_kernel() -> None:
    # The infinite-width ReLU AE kernel of the infinity-AE / Distill-CF paper, written out independently of the
    # recursion.
    x1, x2 = _inputs(6, 9, seed=1), _inputs(4, 9, seed=2)
    wv, bv, d = 2.0, 0.01, 9
    s1 = wv * x1 @ x2.T / d + bv
    q1 = wv * (x1 * x1).sum(1) / d + bv
    q2 = wv * (x2 * x2).sum(1) / d + bv
    qq = q1[:, None] * q2[None]
    theta = torch.arccos((s1 / qq.sqrt()).clamp(-1, 1))
    relu = ((qq - s1**2).clamp_min(0).sqrt() + (math.pi - theta) * s1) / (2 * math.pi)
    s2 = wv * relu + bv
    theta_ntk = s2 + wv * (math.pi - theta) / (2 * math.pi) * s1
    torch.testing.assert_close(fc_nngp(x1, x2), s2, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fc_ntk(x1, x2), theta_ntk, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_blocked_equals_full_and_diag_helper(depth: int) -> None:
    x1, x2 = _inputs(23, 6, seed=3), _inputs(17, 6, seed=4)
    full_nngp, full_ntk = fc_kernels(x1, x2, depth=depth, block_size=4096)
    blk_nngp, blk_ntk = fc_kernels(x1, x2, depth=depth, block_size=5)
    torch.testing.assert_close(blk_nngp, full_nngp, rtol=0, atol=1e-12)
    torch.testing.assert_close(blk_ntk, full_ntk, rtol=0, atol=1e-12)
    nngp_diag, ntk_diag = fc_kernel_diag(x1, depth=depth)
    gram_nngp, gram_ntk = fc_kernels(x1, depth=depth, block_size=7)
    torch.testing.assert_close(gram_nngp.diagonal(), nngp_diag, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gram_ntk.diagonal(), ntk_diag, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gram_ntk, gram_ntk.T)
    assert torch.linalg.eigvalsh(gram_ntk).min() > -1e-9  # a kernel: positive semi-definite


def test_gradients_are_finite_at_duplicate_points_and_match_finite_differences() -> None:
    x = _inputs(6, 4, seed=5).requires_grad_(True)
    k = fc_ntk(x, depth=2)
    (g,) = torch.autograd.grad(k.sum(), x)
    assert torch.isfinite(g).all()
    # away from coincident points the gradient is the exact one
    y = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(9)).requires_grad_(True)
    z = torch.randn(3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    assert torch.autograd.gradcheck(lambda a: fc_ntk(a, z, depth=2), (y,))
    assert torch.autograd.gradcheck(lambda a: fc_nngp(a, z, depth=1), (y,))
    # the Gram matrix (diagonal at angle exactly 0), as used for a support set
    assert torch.autograd.gradcheck(lambda a: fc_ntk(a, depth=2, block_size=2), (y,))


def test_follows_input_dtype_and_flattens_images() -> None:
    x = torch.randn(4, 1, 3, 3)
    k = fc_ntk(x)
    assert k.dtype == torch.float32 and k.shape == (4, 4)
    torch.testing.assert_close(k.double(), fc_ntk(x.double().reshape(4, 9)), rtol=1e-5, atol=1e-6)


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(DataValidationError, match="features"):
        fc_ntk(torch.randn(3, 4), torch.randn(2, 5))
    with pytest.raises(DataValidationError, match="depth"):
        fc_nngp(torch.randn(3, 4), depth=-1)


def _small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(12, 4)).double()


def _explicit_ntk(model: nn.Module, x1: Tensor, x2: Tensor) -> Tensor:
    """Reference: per-sample, per-output Jacobians by plain autograd, traced over outputs."""
    def jac(x: Tensor) -> Tensor:
        rows = []
        for xi in x:
            out = model(xi[None])[0]
            rows.append(torch.stack([torch.cat([g.flatten() for g in torch.autograd.grad(o, list(model.parameters()),
                                                                                          retain_graph=True)])
                                     for o in out]))
        return torch.stack(rows)  # (n, C, P)

    j1, j2 = jac(x1), jac(x2)
    return torch.einsum("acp,bcp->ab", j1, j2) / j1.shape[1]


def test_empirical_ntk_equals_explicit_jacobians_in_any_block_size() -> None:
    model = _small_cnn()
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(5, 1, 4, 4, dtype=torch.float64, generator=g)
    x2 = torch.randn(3, 1, 4, 4, dtype=torch.float64, generator=g)
    ref = _explicit_ntk(model, x1, x2)
    for block in (1, 2, 64):
        torch.testing.assert_close(empirical_ntk(model, x1, x2, block_size=block), ref, rtol=1e-10, atol=1e-12)
    gram = empirical_ntk(model, x1, block_size=2)
    torch.testing.assert_close(gram, _explicit_ntk(model, x1, x1), rtol=1e-10, atol=1e-12)
    full = empirical_ntk(model, x1, x2, output="full")
    assert full.shape == (5, 3, 4, 4)
    torch.testing.assert_close(full.diagonal(dim1=2, dim2=3).mean(-1), ref)


def test_empirical_ntk_of_a_wide_net_approaches_the_analytic_ntk() -> None:
    # same tolerance reasoning as test_ntk_matches_wide_finite_net (4 nets of width 1024)
    x = _inputs(8, 5)
    emp = torch.stack([empirical_ntk(_ntk_param_mlp(5, 1024, 1, 1, seed=s), x) for s in range(4)]).mean(0)
    err = (emp - fc_ntk(x, depth=1)).abs() / fc_ntk(x, depth=1).diag().max()
    assert err.max() < 0.06 and err.mean() < 0.025, (err.max(), err.mean())


def _random_relu_features(depth: int, width: int, d: int, w_var: float = 2.0,
                           b_var: float = 0.01) -> Callable[[torch.Generator], nn.Module]:
    def make(g: torch.Generator) -> nn.Module:
        layers: list[nn.Module] = []
        fan = d
        for _ in range(depth):
            lin = nn.Linear(fan, width).double()
            with torch.no_grad():
                lin.weight.normal_(0.0, math.sqrt(w_var / fan), generator=g)
                lin.bias.normal_(0.0, math.sqrt(b_var), generator=g)
            layers += [lin, nn.ReLU()]
            fan = width
        return nn.Sequential(*layers)

    return make


@pytest.mark.parametrize("depth", [1, 2])
def test_random_feature_nngp_converges_to_the_analytic_nngp(depth: int) -> None:
    # M = 16 nets x width 512 = 8192 random features: MC std ~ sqrt(2 / 8192) ~ 1.6% of the diagonal, plus O(1/width)
    # finite-width bias for depth 2: tolerance 6% (max) / 2% (mean) of the largest entry.
    x = _inputs(10, 6)
    kernel = RandomFeatureNNGP(make_model=_random_relu_features(depth, 512, 6), n_models=16)
    kernel.resample(torch.Generator().manual_seed(0))
    k = kernel(x)
    ref = fc_nngp(x, depth=depth)
    err = (k - ref).abs() / ref.diag().max()
    assert err.max() < 0.06 and err.mean() < 0.02, (err.max(), err.mean())
    # one random net is a much worse estimate than sixteen (the estimate converges)
    kernel1 = RandomFeatureNNGP(make_model=_random_relu_features(depth, 16, 6), n_models=1)
    kernel1.resample(torch.Generator().manual_seed(0))
    assert ((kernel1(x) - ref).abs() / ref.diag().max()).mean() > err.mean()


def test_random_features_are_normalised_and_differentiable() -> None:
    make = _random_relu_features(1, 8, 3)
    g = torch.Generator().manual_seed(1)
    models = [make(g) for _ in range(3)]
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    phi = random_features(models, x, block_size=3)
    assert phi.shape == (4, 24)
    manual = torch.cat([m(x) for m in models], 1) / math.sqrt(24)
    torch.testing.assert_close(phi, manual)
    z = torch.randn(2, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: random_feature_kernel(random_features(models, a),
                                                                    random_features(models, z)), (x,))
    with pytest.raises(DataValidationError, match="resample"):
        RandomFeatureNNGP(make_model=make)(x)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_inplace_fast_path_equals_the_differentiable_path(depth: int) -> None:
    x1, x2 = _inputs(9, 5, seed=6), _inputs(7, 5, seed=7)
    for a, b in ((x1, x2), (x1, None)):
        fast = fc_kernels(a, b, depth=depth, block_size=4)
        a_grad = a.clone().requires_grad_(True)
        slow = fc_kernels(a_grad, None if b is None else b, depth=depth, block_size=4)
        for f, s in zip(fast, slow):
            torch.testing.assert_close(f, s.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("depth", [1, 3])
def test_compiled_path_equals_the_eager_path(depth: int) -> None:
    """``compile=True`` (one fused loop per layer, or eager where torch.compile does not work here) gives the same
    kernels, including exact coincident points on Gram diagonal blocks (duplicates in ``_inputs``)."""
    x1, x2 = _inputs(9, 5, seed=6), _inputs(7, 5, seed=7)
    for a, b, block in ((x1, x2, 4), (x1, None, 4), (x1, None, 64)):
        eager = fc_kernels(a, b, depth=depth, block_size=block)
        fused = fc_kernels(a, b, depth=depth, block_size=block, compile=True)
        for f, e in zip(fused, eager):
            assert f is not None and e is not None
            torch.testing.assert_close(f, e, rtol=1e-10, atol=1e-10)
        nngp_only = fc_nngp(a, b, depth=depth, block_size=block, compile=True)
        torch.testing.assert_close(nngp_only, eager[0], rtol=1e-10, atol=1e-10)
