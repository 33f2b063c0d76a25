"""Kernel ridge regression against torch.linalg.solve, its regulariser, blocked prediction and singular kernels."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import Tensor

from distill_core.errors import DataValidationError
from distill_core.kernels import fc_ntk
from distill_core.objectives import krr


def _data(n: int = 12, m: int = 7, d: int = 5, c: int = 3, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x_s = torch.randn(n, d, dtype=torch.float64, generator=g)
    x_t = torch.randn(m, d, dtype=torch.float64, generator=g)
    y_s = torch.randn(n, c, dtype=torch.float64, generator=g)
    y_t = torch.randn(m, c, dtype=torch.float64, generator=g)
    return x_s, x_t, y_s, y_t


@pytest.mark.parametrize("relative", [True, False])
def test_predictions_match_linalg_solve(relative: bool) -> None:
    x_s, x_t, y_s, y_t = _data()
    k_ss, k_ts = fc_ntk(x_s), fc_ntk(x_t, x_s)
    reg = 1e-2
    lam = reg * torch.trace(k_ss) / len(k_ss) if relative else torch.tensor(reg, dtype=torch.float64)
    expected = k_ts @ torch.linalg.solve(k_ss + lam * torch.eye(len(k_ss), dtype=torch.float64), y_s)
    pred = krr.krr_predict(k_ts, k_ss, y_s, reg=reg, relative=relative)
    torch.testing.assert_close(pred, expected, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(krr.krr_loss(k_ts, k_ss, y_s, y_t, reg=reg, relative=relative),
                               0.5 * ((expected - y_t) ** 2).mean())
    torch.testing.assert_close(krr.krr_regularizer(k_ss, reg, relative=relative), lam)


def test_float64_option_and_vector_targets() -> None:
    x_s, x_t, y_s, _ = _data(seed=1)
    k_ss, k_ts = fc_ntk(x_s.float()), fc_ntk(x_t.float(), x_s.float())
    pred64 = krr.krr_predict(k_ts, k_ss, y_s[:, 0].float(), reg=1e-3, float64=True)
    assert pred64.dtype == torch.float32 and pred64.shape == (7,)
    exact = krr.krr_predict(k_ts.double(), k_ss.double(), y_s[:, 0], reg=1e-3)
    torch.testing.assert_close(pred64.double(), exact, rtol=1e-4, atol=1e-4)


def test_gradient_through_the_solve_matches_finite_differences() -> None:
    x_s, x_t, y_s, y_t = _data(6, 4, 3, 2, seed=2)

    def loss(xs: Tensor, ys: Tensor) -> Tensor:
        return krr.krr_loss(fc_ntk(x_t, xs), fc_ntk(xs), ys, y_t, reg=1e-2)

    assert torch.autograd.gradcheck(loss, (x_s.requires_grad_(True), y_s.requires_grad_(True)))


def test_blocked_prediction_equals_full_and_blocked_kernel() -> None:
    x_s, x_t, y_s, _ = _data(10, 23, seed=3)
    full = krr.krr_predict(fc_ntk(x_t, x_s), fc_ntk(x_s), y_s, reg=1e-4)
    blocked = krr.krr_predict_blocked(lambda a, b: fc_ntk(a, b), x_s, y_s, x_t, block_size=5, reg=1e-4)
    torch.testing.assert_close(blocked, full, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(krr.blocked_kernel(fc_ntk, x_t, x_s, block_size=4), fc_ntk(x_t, x_s))


def test_duplicate_support_points_with_zero_reg_use_documented_jitter(caplog: pytest.LogCaptureFixture) -> None:
    x_s, x_t, y_s, _ = _data(8, 5, seed=4)
    x_s[1] = x_s[0]
    y_s[1] = y_s[0]
    k_ss = fc_ntk(x_s)
    with caplog.at_level(logging.WARNING):
        pred = krr.krr_predict(fc_ntk(x_t, x_s), k_ss, y_s, reg=0.0)
    assert torch.isfinite(pred).all()
    assert "jitter" in caplog.text
    # exactly the documented first jitter: 1e-6 x the mean diagonal
    jittered = k_ss + 1e-6 * k_ss.diagonal().mean() * torch.eye(8, dtype=torch.float64)
    torch.testing.assert_close(pred, fc_ntk(x_t, x_s) @ torch.linalg.solve(jittered, y_s))


def test_indefinite_or_nonfinite_kernels_raise_a_clear_error() -> None:
    y = torch.randn(3, 2, dtype=torch.float64)
    indefinite = torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))
    with pytest.raises(krr.SingularKernelError, match="singular or indefinite"):
        krr.krr_solve(indefinite, y, reg=0.0)
    bad = torch.eye(3, dtype=torch.float64)
    bad[0, 0] = float("nan")
    with pytest.raises(krr.SingularKernelError, match="non-finite"):
        krr.krr_solve(bad, y)
    with pytest.raises(FloatingPointError):  # the distiller rolls back on FloatingPointError
        krr.krr_solve(bad, y)
    with pytest.raises(DataValidationError, match="square"):
        krr.krr_solve(torch.ones(3, 2), y)
    with pytest.raises(DataValidationError, match=">= 0"):
        krr.krr_solve(torch.eye(3), y, reg=-1.0)


def test_evaluate_krr_scores_the_summary_as_support_set() -> None:
    from distill_core.evaluation_krr import evaluate_krr, krr_support_targets
    from distill_core.preprocessing import ChannelNormalization, Preprocessing
    from distill_core.synset import Summary
    from distill_core.testing import make_blobs

    data = make_blobs(n_per_class=30, num_classes=3, dim=6, seed=1)
    idx = torch.tensor([0, 1, 30, 31, 60, 61])
    summary = Summary(x=data.x_train[idx], labels=data.y_train[idx], num_classes=3,
                      preprocessing=data.preprocessing)
    result = evaluate_krr(summary, data, "fc_ntk", block_size=7)
    y_s = krr_support_targets(summary)
    torch.testing.assert_close(y_s.sum(1), torch.zeros(6))  # centred one-hot
    pred = krr.krr_predict(fc_ntk(data.x_test, summary.x.detach()), fc_ntk(summary.x.detach()), y_s.double(),
                       reg=1e-6, float64=True)
    expected = 100.0 * float((pred.argmax(1) == data.y_test).float().mean())
    assert abs(result.accuracy - expected) < 1e-9 and result.accuracy > 60.0  # separable blobs
    assert result.to_dict()["n_test"] == len(data.y_test)
    other = Preprocessing([ChannelNormalization(mean=torch.zeros(1), std=torch.ones(1))])
    summary.preprocessing = other
    with pytest.raises(DataValidationError, match="preprocessing"):
        evaluate_krr(summary, data)
