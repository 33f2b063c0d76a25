"""Learners over (L, d + 1) sequences: shapes, padding invariance, the mask channel is never differentiated."""

from __future__ import annotations

import pytest
import torch

from distill_core.errors import UnknownNameError
from distill_text.modality import TextModality

L, D = 12, 16


def _batch(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, L, D + 1, generator=g)
    lengths = torch.tensor([12, 9, 6, 7][:n])
    mask = (torch.arange(L)[None, :] < lengths[:, None]).float()
    x[..., -1] = mask
    return x


@pytest.mark.parametrize("name", ["textcnn", "transformer", "meanpool"])
def test_shapes_padding_invariance_and_no_mask_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = TextModality().build_model(name, sample_shape=(L, D + 1), num_classes=3).eval()
    x = _batch()
    out = model(x)
    assert out.shape == (4, 3)
    # garbage in the padded positions must not change the output
    noisy = x.clone()
    pad = noisy[..., -1] < 0.5
    noisy[..., :-1][pad] = 100.0
    torch.testing.assert_close(model(noisy), out, rtol=1e-5, atol=1e-5)
    x.requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None
    assert torch.all(x.grad[..., -1] == 0)
    assert torch.all(x.grad[..., :-1][pad] == 0)
    assert x.grad[..., :-1][~pad].abs().sum() > 0


def test_textcnn_is_kims_architecture() -> None:
    model = TextModality().build_model("textcnn", sample_shape=(L, D + 1), num_classes=2)
    assert [c.kernel_size[0] for c in model.convs] == [3, 4, 5]
    assert all(c.out_channels == 100 for c in model.convs)
    assert model.dropout.p == 0.5 and model.fc.in_features == 300
    short = torch.zeros(2, 3, D + 1)
    short[..., -1] = 1.0
    assert model.eval()(short).shape == (2, 2)  # shorter than the widest window: zero-padded


def test_fixed_init_seed_gives_identical_learners() -> None:
    modality = TextModality()
    a = modality.build_model("textcnn", sample_shape=(L, D + 1), num_classes=2, init_seed=5)
    b = modality.build_model("textcnn", sample_shape=(L, D + 1), num_classes=2, init_seed=5)
    c = modality.build_model("textcnn", sample_shape=(L, D + 1), num_classes=2, init_seed=6)
    assert torch.equal(a.fc.weight, b.fc.weight) and not torch.equal(a.fc.weight, c.fc.weight)


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="textcnn"):
        TextModality().build_model("lstm", sample_shape=(L, D + 1), num_classes=2)
