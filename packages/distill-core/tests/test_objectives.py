"""Gradient- and distribution-matching distances against hand-computed values and explicit loops."""

from __future__ import annotations

import math

import pytest
import torch

from distill_core.errors import UnknownNameError
from distill_core.objectives import (
    classwise_mean_embedding_distance,
    gaussian_mmd2,
    gradient_match_distance,
    layerwise_distance,
    mean_embedding_distance,
)


def _rows_reference(a: torch.Tensor, b: torch.Tensor) -> float:
    """DC's layer-wise distance with plain Python arithmetic: one row per output unit."""
    if a.dim() <= 1:
        return 0.0
    total = 0.0
    for ra, rb in zip(a.reshape(a.shape[0], -1).tolist(), b.reshape(b.shape[0], -1).tolist()):
        dot = sum(x * y for x, y in zip(ra, rb))
        na = math.sqrt(sum(x * x for x in ra))
        nb = math.sqrt(sum(y * y for y in rb))
        total += 1 - dot / (na * nb + 1e-6)
    return total


class TestLayerwiseDistance:
    def test_conv_shaped_by_hand(self) -> None:
        # out=2 units, in=1, 2x2 kernels: unit 0 orthogonal (distance 1), unit 1 parallel (distance ~0)
        g_real = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [1.0, 1.0]]]], dtype=torch.float64)
        g_syn = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]], [[[2.0, 2.0], [2.0, 2.0]]]], dtype=torch.float64)
        expected = (1 - 0.0 / (1 * 1 + 1e-6)) + (1 - 8.0 / (2 * 4 + 1e-6))
        assert layerwise_distance(g_real, g_syn).item() == pytest.approx(expected, rel=1e-12)

    def test_linear_shaped_by_hand(self) -> None:
        # rows (3, 4) and (-3, -4): cos = -1 -> distance 2; rows (1, 0) and (1, 1): cos = 1/sqrt(2)
        g_real = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
        g_syn = torch.tensor([[-3.0, -4.0], [1.0, 1.0]], dtype=torch.float64)
        expected = (1 + 25 / (25 + 1e-6)) + (1 - 1 / (math.sqrt(2) + 1e-6))
        assert layerwise_distance(g_real, g_syn).item() == pytest.approx(expected, rel=1e-12)

    def test_three_dimensional_gives_one_row_per_channel(self) -> None:
        g = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        h = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        assert layerwise_distance(g, h).item() == pytest.approx(_rows_reference(g, h), rel=1e-12)

    def test_one_dimensional_contributes_zero(self) -> None:
        assert layerwise_distance(torch.tensor([1.0, 2.0]), torch.tensor([-5.0, 3.0])).item() == 0.0
        assert layerwise_distance(torch.tensor(1.0), torch.tensor(-1.0)).item() == 0.0

    def test_denominator_epsilon(self) -> None:
        # identical tiny rows: |a|^2 = 1e-6 equals the epsilon, so the cosine is 0.5 instead of 1
        a = torch.tensor([[1e-3, 0.0]], dtype=torch.float64)
        assert layerwise_distance(a, a.clone()).item() == pytest.approx(0.5, rel=1e-9)
        # and a zero gradient gives distance 1 per row instead of NaN
        z = torch.zeros(2, 3)
        assert layerwise_distance(z, z).item() == pytest.approx(2.0)

    def test_random_against_reference(self) -> None:
        g = torch.Generator().manual_seed(3)
        a, b = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, 3, 3, 3, generator=g)
        assert layerwise_distance(a, b).item() == pytest.approx(_rows_reference(a, b), rel=1e-5)

    def test_shape_mismatch(self) -> None:
        with pytest.raises(ValueError, match="shapes differ"):
            layerwise_distance(torch.zeros(2, 3), torch.zeros(3, 2))

    def test_differentiable_in_synthetic_gradient(self) -> None:
        a = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
        b = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), requires_grad=True)
        layerwise_distance(a, b).backward()
        assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0


class TestGradientMatchDistance:
    @pytest.fixture
    def grads(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        g = torch.Generator().manual_seed(0)
        shapes = [(4, 2, 3, 3), (4,), (5, 36), (5,)]
        real = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        syn = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
        return real, syn

    def test_ours_sums_layers_and_skips_biases(self, grads) -> None:  # type: ignore[no-untyped-def]
        real, syn = grads
        expected = sum(_rows_reference(a, b) for a, b in zip(real, syn))
        assert gradient_match_distance(real, syn, metric="ours").item() == pytest.approx(expected, rel=1e-12)
        # changing only the biases does not change DC's distance
        syn_bias = [s if s.dim() > 1 else s * -7 for s in syn]
        assert gradient_match_distance(real, syn_bias).item() == pytest.approx(expected, rel=1e-12)

    def test_mse(self, grads) -> None:  # type: ignore[no-untyped-def]
        real, syn = grads
        expected = sum(float(x - y) ** 2 for a, b in zip(real, syn) for x, y in zip(a.flatten(), b.flatten()))
        assert gradient_match_distance(real, syn, metric="mse").item() == pytest.approx(expected, rel=1e-12)

    def test_l1(self, grads) -> None:  # type: ignore[no-untyped-def]
        real, syn = grads
        expected = sum(abs(float(x - y)) for a, b in zip(real, syn) for x, y in zip(a.flatten(), b.flatten()))
        assert gradient_match_distance(real, syn, metric="l1").item() == pytest.approx(expected, rel=1e-12)

    def test_cos(self, grads) -> None:  # type: ignore[no-untyped-def]
        real, syn = grads
        flat_a = [float(v) for a in real for v in a.flatten()]
        flat_b = [float(v) for b in syn for v in b.flatten()]
        dot = sum(x * y for x, y in zip(flat_a, flat_b))
        norm = math.sqrt(sum(x * x for x in flat_a)) * math.sqrt(sum(y * y for y in flat_b))
        expected = 1 - dot / (norm + 1e-6)
        assert gradient_match_distance(real, syn, metric="cos").item() == pytest.approx(expected, rel=1e-12)

    def test_identical_gradients(self, grads) -> None:  # type: ignore[no-untyped-def]
        real, _ = grads
        assert gradient_match_distance(real, real, metric="mse").item() == 0.0
        # only the 1e-6 in the denominator keeps these from being exactly 0
        sq = sum(float((g * g).sum()) for g in real)
        assert gradient_match_distance(real, real, metric="cos").item() == pytest.approx(1 - sq / (sq + 1e-6))
        assert gradient_match_distance(real, real, metric="ours").item() == pytest.approx(0.0, abs=1e-6)

    def test_unknown_metric_lists_choices(self, grads) -> None:  # type: ignore[no-untyped-def]
        real, syn = grads
        with pytest.raises(UnknownNameError, match=r"'l2'.*\['cos', 'l1', 'mse', 'ours'\]"):
            gradient_match_distance(real, syn, metric="l2")  # type: ignore[arg-type]

    def test_length_mismatch(self, grads) -> None:  # type: ignore[no-untyped-def]
        real, syn = grads
        with pytest.raises(ValueError, match="4 real and 3 synthetic"):
            gradient_match_distance(real, syn[:3])


class TestMeanEmbedding:
    def test_by_hand(self) -> None:
        e_real = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # mean (1, 1)
        e_syn = torch.tensor([[1.0, 3.0]])  # mean (1, 3)
        assert mean_embedding_distance(e_real, e_syn).item() == pytest.approx(4.0)
        assert mean_embedding_distance(e_real, torch.tensor([[1.0, 1.0]])).item() == 0.0

    def test_classwise_sums_classes_and_skips_absent(self) -> None:
        e_real = torch.tensor([[0.0], [2.0], [10.0], [5.0]])
        y_real = torch.tensor([0, 0, 1, 2])
        e_syn = torch.tensor([[3.0], [7.0], [1.0]])
        y_syn = torch.tensor([0, 1, 3])  # class 2 has no synthetic sample, class 3 no real one
        # class 0: (1 - 3)^2 = 4; class 1: (10 - 7)^2 = 9; classes 2 and 3 are skipped
        value = classwise_mean_embedding_distance(e_real, y_real, e_syn, y_syn, num_classes=4)
        assert value.item() == pytest.approx(13.0)

    def test_gradient_pulls_synthetic_mean_to_real_mean(self) -> None:
        e_real = torch.tensor([[1.0, -1.0], [3.0, 1.0]])
        e_syn = torch.zeros(2, 2, requires_grad=True)
        mean_embedding_distance(e_real, e_syn).backward()
        # d/de_syn ||m_r - m_s||^2 = -2 (m_r - m_s) / n_syn = -(2, 0)
        assert torch.allclose(e_syn.grad, torch.tensor([[-2.0, 0.0], [-2.0, 0.0]]))


def _mmd2_loop(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...], scale: float) -> float:
    def k(a: list[float], b: list[float]) -> float:
        d2 = sum((p - q) ** 2 for p, q in zip(a, b))
        return sum(math.exp(-d2 / (2 * s * s * scale)) for s in bandwidths)

    xs, ys = x.tolist(), y.tolist()
    kxx = sum(k(a, b) for a in xs for b in xs) / len(xs) ** 2
    kyy = sum(k(a, b) for a in ys for b in ys) / len(ys) ** 2
    kxy = sum(k(a, b) for a in xs for b in ys) / (len(xs) * len(ys))
    return kxx + kyy - 2 * kxy


class TestGaussianMMD:
    def test_zero_for_identical_samples(self) -> None:
        x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0))
        assert abs(gaussian_mmd2(x, x.clone()).item()) < 1e-6
        assert abs(gaussian_mmd2(x, x.clone(), relative=False).item()) < 1e-6

    def test_positive_and_growing_with_mean_shift(self) -> None:
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(20, 2, generator=g), torch.randn(20, 2, generator=g)
        values = [gaussian_mmd2(x, y + shift, relative=False).item() for shift in (0.5, 1.0, 2.0, 4.0)]
        assert all(v > 0 for v in values)
        assert values == sorted(values) and values[-1] > 5 * values[0], values

    def test_matches_double_loop_absolute(self) -> None:
        g = torch.Generator().manual_seed(2)
        x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
        got = gaussian_mmd2(x, y, bandwidths=(0.5, 2.0), relative=False).item()
        assert got == pytest.approx(_mmd2_loop(x, y, (0.5, 2.0), 1.0), rel=1e-9)

    def test_matches_double_loop_median_heuristic(self) -> None:
        g = torch.Generator().manual_seed(3)
        x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
        pooled = torch.cat([x, y]).tolist()
        d2 = sorted(sum((p - q) ** 2 for p, q in zip(a, b)) for a in pooled for b in pooled if a != b)
        median = d2[(len(d2) - 1) // 2]  # torch.median returns the lower middle value
        got = gaussian_mmd2(x, y, bandwidths=(1.0,), relative=True).item()
        assert got == pytest.approx(_mmd2_loop(x, y, (1.0,), median), rel=1e-9)

    def test_relative_is_scale_invariant(self) -> None:
        g = torch.Generator().manual_seed(4)
        x, y = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
        a = gaussian_mmd2(x, y + 1).item()
        b = gaussian_mmd2(100 * x, 100 * (y + 1)).item()
        assert a == pytest.approx(b, rel=1e-9)

    def test_gradient_finite_at_zero_distance_and_correct(self) -> None:
        # a summary initialised from real samples has zero distances to the real batch: no NaN gradient
        g = torch.Generator().manual_seed(5)
        x = torch.randn(30, 3, generator=g, dtype=torch.float64)
        y = x[:4].clone().requires_grad_(True)
        gaussian_mmd2(x, y).backward()
        assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
        y2 = (x[:4] + 0.3).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda t: gaussian_mmd2(x, t, bandwidths=(0.7, 1.5), relative=False), (y2,))
