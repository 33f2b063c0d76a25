from __future__ import annotations

import pytest
import torch

from distill_core.errors import UnknownNameError
from distill_vision.augment import DSA


@pytest.mark.parametrize("strategy", ["color", "crop", "cutout", "flip", "scale", "rotate"])
def test_siamese_draw_is_shared_between_real_and_synthetic(strategy: str) -> None:
    dsa = DSA(strategy)
    x = torch.randn(4, 3, 16, 16)
    for seed in range(5):
        a = dsa(x, seed=seed)
        b = dsa(x.clone(), seed=seed)
        assert torch.equal(a, b)
        # one parameter set for the batch: identical inputs give identical outputs
        same = dsa(x[:1].expand(4, -1, -1, -1).contiguous(), seed=seed)
        assert torch.allclose(same[0], same[3])


def test_gradients_flow_into_the_images() -> None:
    dsa = DSA()
    x = torch.randn(2, 1, 12, 12, requires_grad=True)
    for seed in range(12):
        dsa(x, seed=seed).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_per_sample_parameters_without_seed() -> None:
    dsa = DSA("scale")
    x = torch.randn(1, 1, 16, 16).expand(6, -1, -1, -1).contiguous()
    out = dsa(x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])


def test_crop_is_an_exact_integer_shift() -> None:
    dsa = DSA("crop")
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    for seed in range(10):
        out = dsa(x, seed=seed)
        assert out.max() == pytest.approx(1.0, abs=1e-5)
        assert out.sum() == pytest.approx(1.0, abs=1e-4)
        r, c = divmod(int(out.argmax()), 16)
        assert abs(r - 8) <= 2 and abs(c - 8) <= 2  # round(0.125 * 16) = 2 pixels at most


def test_cutout_zeroes_one_square_of_half_the_side() -> None:
    dsa = DSA("cutout")
    x = torch.ones(1, 1, 16, 16)
    out = dsa(x, seed=1)
    zeros = int((out == 0).sum())
    assert 0 < zeros <= 64  # an 8x8 square, clipped at the border


def test_unknown_transform_is_refused() -> None:
    with pytest.raises(UnknownNameError, match="rotate"):
        DSA("color_blur")
