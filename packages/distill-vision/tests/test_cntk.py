"""The analytic infinite-width ConvNet kernels against Monte-Carlo estimates of wide finite networks.

Tolerances are absolute, relative to the largest diagonal entry, and at least 2.5x the errors observed with these
seeds: NNGP vs the readout covariance averaged over 64 random width-256 nets: 0.4-0.5 % observed, 4 % allowed
(24 nets gave ~2 %); NTK vs the empirical NTK (torch.func) averaged over 8 width-256 nets: 1.0-2.1 % observed,
5 % allowed; depth-1 NNGP vs one width-20000 net: 0.5 % observed, 2 % allowed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from distill_core.errors import DataValidationError
from distill_core.kernels import empirical_ntk
from distill_vision.cntk import CNTK, ConvNetNTKParam, cnngp, cntk, cntk_kernels

torch.set_num_threads(1)

ARCHS = [(False, "gap"), (True, "flatten")]  # CNTK-GAP (Arora et al.) and the KIP / RFAD ConvNet


def _images(n: int = 4, channels: int = 2, size: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _scale(k: torch.Tensor) -> float:
    return float(k.diagonal().max())


def _mean_over_wide_nets(nets: int, seed: int, pool: bool, readout: str,
                         estimate: Callable[[ConvNetNTKParam], torch.Tensor]) -> torch.Tensor:
    """The mean of ``estimate(net)`` over ``nets`` random width-256 networks of the architecture, seeded."""
    torch.manual_seed(seed)
    total = torch.zeros(())
    for _ in range(nets):
        net = ConvNetNTKParam(2, (6, 6), width=256, depth=2, pool=pool, readout=readout)  # type: ignore[arg-type]
        total = total + estimate(net)
    return total / nets


@pytest.mark.parametrize(("pool", "readout"), ARCHS)
def test_nngp_matches_monte_carlo_over_wide_random_nets(pool: bool, readout: str) -> None:
    x = _images()
    nngp = cnngp(x, depth=2, pool=pool, readout=readout)

    def readout_expectation(net: ConvNetNTKParam) -> torch.Tensor:
        # the expectation over the readout weights and bias, given the hidden features
        with torch.no_grad():
            features = net.features(x)
        return net.w_var * features @ features.T / features.shape[1] + net.b_var

    mc = _mean_over_wide_nets(64, 1, pool, readout, readout_expectation)
    assert (mc - nngp).abs().max() <= 0.04 * _scale(nngp), (nngp, mc)


@pytest.mark.parametrize(("pool", "readout"), ARCHS)
def test_ntk_matches_empirical_ntk_of_wide_nets(pool: bool, readout: str) -> None:
    x = _images(3)
    ntk = cntk(x, depth=2, pool=pool, readout=readout)
    emp = _mean_over_wide_nets(8, 2, pool, readout, lambda net: empirical_ntk(net, x))
    assert (emp - ntk).abs().max() <= 0.05 * _scale(ntk), (ntk, emp)


def test_depth_one_nngp_is_exact_for_a_single_wide_net() -> None:
    # one hidden layer: the features are exactly Gaussian-ReLU, so one very wide net is already close
    x = _images(3, channels=1, size=5, seed=4)
    nngp = cnngp(x, depth=1)
    torch.manual_seed(5)
    net = ConvNetNTKParam(1, (5, 5), width=20000, depth=1)
    with torch.no_grad():
        features = net.features(x)
    mc = net.w_var * features @ features.T / features.shape[1] + net.b_var
    assert (mc - nngp).abs().max() <= 0.02 * _scale(nngp)


@pytest.mark.parametrize(("pool", "readout"), [*ARCHS, (False, "flatten"), (True, "gap")])
def test_symmetric_psd_and_blocked_equals_unblocked(pool: bool, readout: str) -> None:
    x = _images(7, channels=1, size=8, seed=3)
    whole = CNTK(depth=3, pool=pool, readout=readout, block_pairs=1000)(x)  # type: ignore[arg-type]
    tiled = CNTK(depth=3, pool=pool, readout=readout, block_pairs=3)(x)  # type: ignore[arg-type]
    for k_whole, k_tiled in zip(whole, tiled):
        torch.testing.assert_close(k_tiled, k_whole, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(k_whole, k_whole.T, rtol=1e-5, atol=1e-6)
        eig = torch.linalg.eigvalsh(k_whole.double())
        assert eig.min() >= -1e-5 * eig.max()
    nngp, ntk = whole
    assert (ntk.diagonal() > nngp.diagonal()).all()  # the NTK adds the (positive) hidden-layer terms


def test_cross_kernel_equals_the_block_of_the_joint_kernel() -> None:
    x = _images(6, channels=1, size=8, seed=6)
    joint = cntk(x, depth=2, pool=True, readout="flatten")
    cross = cntk(x[:2], x[2:], depth=2, pool=True, readout="flatten", block_pairs=3)
    torch.testing.assert_close(cross, joint[:2, 2:], rtol=1e-5, atol=1e-6)


def test_gradients_are_finite_and_match_finite_differences() -> None:
    x = _images(2, channels=1, size=4, seed=7).double()
    x = torch.cat([x, x[:1]]).requires_grad_(True)  # a duplicate: coincident points must not give NaN

    def f(inp: torch.Tensor) -> torch.Tensor:
        return CNTK(depth=2, pool=False, block_pairs=2)(inp, inp[:2])[1]

    f(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert torch.autograd.gradcheck(lambda a: f(torch.cat([a, x[2:].detach()])), (x[:2].detach().requires_grad_(),),
                                    eps=1e-6, atol=1e-4)


def test_bad_input_is_refused() -> None:
    with pytest.raises(DataValidationError, match="images"):
        cntk(torch.randn(3, 16))
    with pytest.raises(DataValidationError, match="pooled"):
        cntk(torch.randn(2, 1, 4, 4), depth=3, pool=True)
    with pytest.raises(DataValidationError, match="readout"):
        cntk_kernels(torch.randn(2, 1, 4, 4), readout="max")  # type: ignore[arg-type]
