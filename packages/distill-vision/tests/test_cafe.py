"""CAFE on digits: the method contract, the discrimination loss against a hand-computed value, the aligned layers,
the dynamic loops (both watchers and their caps), the herding-coreset init, data of any shape and bad options."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from distill_core.data import Budget
from distill_core.errors import DataValidationError
from distill_core.runner import distill
from distill_vision.methods.cafe import CAFE, class_means, discrimination_loss, layer_features
from distill_vision.models import build_model
from distill_vision.testing import ConvNetDigitsContract


class TestCAFEContract(ConvNetDigitsContract):
    method = "cafe"


def test_discrimination_loss_by_hand() -> None:
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    centres = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # logits = real @ centres.T: [1, 0], [0, 2], [1, 2]; summed cross-entropy of the right columns
    expected = (-math.log(math.e / (math.e + 1)) - math.log(math.e**2 / (1 + math.e**2))
                - math.log(math.e**2 / (math.e + math.e**2)))
    assert discrimination_loss(real, labels, centres).item() == pytest.approx(expected, rel=1e-6)
    centres.requires_grad_(True)
    discrimination_loss(real, labels, centres).backward()
    assert centres.grad is not None and centres.grad.abs().sum() > 0


def test_class_means_take_unequal_counts() -> None:
    feature = torch.tensor([[1.0], [3.0], [10.0], [5.0]])
    assert torch.equal(class_means(feature, torch.tensor([0, 0, 2, 0]), [2, 0]), torch.tensor([[10.0], [3.0]]))


def test_layers_are_the_block_activations_and_the_final_feature() -> None:
    torch.manual_seed(0)
    net = build_model("convnet", sample_shape=(3, 16, 16), num_classes=5, width=8)  # 3 blocks on 16 px
    x = torch.randn(4, 3, 16, 16)
    layers, logits = layer_features(net, x)
    assert [tuple(f.shape[1:]) for f in layers] == [(8, 16, 16), (8, 8, 8), (8, 4, 4), (8 * 2 * 2,)]
    assert torch.allclose(layers[-1], net.embed(x)) and torch.allclose(logits, net(x))
    # the reference's weights 1, 1, 0.1, 0.1 count from the deepest layer
    assert CAFE()._weights(4) == [0.1, 0.1, 1.0, 1.0]
    assert CAFE()._weights(3) == [0.1, 1.0, 1.0]  # 8x8 digits: 2 blocks + the final feature
    assert CAFE()._weights(6) == [0.0, 0.0, 0.1, 0.1, 1.0, 1.0]


def test_any_channel_count_size_and_number_of_classes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)  # 3 classes of 12x12 RGB images (the reference needs 10 of 3x32x32)
    x = (rng.integers(0, 120, (len(y), 12, 12, 3)) + 60 * y[:, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "rgb.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    outcome = distill("cafe", dataset=f"npz:{tmp_path / 'rgb.npz'}", budget=Budget(ipc=2), progress=False,
                      evaluate=False, overrides={"steps": 2, "model_kwargs": {"width": 8}, "batch_real": 7,
                                                 "outer_loop": 2, "inner_loop": 2})
    assert outcome.run.summary.x.shape == (6, 3, 12, 12)
    assert all(math.isfinite(v) for v in outcome.run.losses)


def _count_loops(monkeypatch: pytest.MonkeyPatch, accuracies: list[float], **overrides: Any) -> tuple[int, list[int]]:
    """Image updates and the network's epochs between them in one outer step, with scripted watcher accuracies."""
    scripted = iter(accuracies * 100)
    updates, epochs = [0], []
    outer_loss, train_inner = CAFE.outer_loss, CAFE.train_inner

    def counted_loss(self: CAFE, *args: Any, **kwargs: Any) -> torch.Tensor:
        updates[0] += 1
        return outer_loss(self, *args, **kwargs)

    def counted_epochs(self: CAFE, *args: Any) -> int:
        epochs.append(train_inner(self, *args))
        return epochs[-1]

    monkeypatch.setattr(CAFE, "real_accuracy", lambda self, net, ctx: next(scripted))
    monkeypatch.setattr(CAFE, "outer_loss", counted_loss)
    monkeypatch.setattr(CAFE, "train_inner", counted_epochs)
    distill("cafe", dataset="digits", budget=Budget(ipc=1), progress=False, evaluate=False,
            overrides={"steps": 1, "model_kwargs": {"width": 8}, "batch_real": 8, "window": 3, **overrides})
    return updates[0], epochs


def test_watchers_stop_the_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    # a steady accuracy: the λ1 watcher stops the image updates after `window` of them; λ2 never fires (cap)
    updates, epochs = _count_loops(monkeypatch, [0.5], outer_loop=20, inner_loop=5)
    assert updates == 3 and epochs == [5, 5]
    # a jumpy accuracy: the image updates run to their cap; λ2 stops every inner loop after `window` epochs
    updates, epochs = _count_loops(monkeypatch, [0.0, 1.0, 0.5], outer_loop=4, inner_loop=20)
    assert updates == 4 and epochs == [3, 3, 3]


def test_caps_below_the_window_skip_the_watchers(monkeypatch: pytest.MonkeyPatch) -> None:
    updates, epochs = _count_loops(monkeypatch, [], outer_loop=2, inner_loop=3)  # no accuracy may be asked for
    assert updates == 2 and epochs == [3]


def test_image_lr_halves_at_the_milestones() -> None:
    outcome = distill("cafe", dataset="digits", budget=Budget(ipc=1), progress=False, evaluate=False,
                      overrides={"steps": 10, "model_kwargs": {"width": 8}, "batch_real": 8, "outer_loop": 1,
                                 "inner_loop": 1, "lr_decay_at": [0.5, 0.8]})
    assert outcome.run.summary.x.isfinite().all()
    method = CAFE()
    method.config.steps, method.config.lr_decay_at = 10, [0.5, 0.8]

    class _Ctx:
        step = 0
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)

    summary = outcome.run.summary
    lrs = []
    for step in (0, 4, 5, 7, 8, 9):
        _Ctx.step = step
        method._image_lr(summary, _Ctx)  # type: ignore[arg-type]
        lrs.append(_Ctx.optimizer.param_groups[0]["lr"])
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]


def test_init_from_the_herding_coreset() -> None:
    """``init="herding"`` (accepted besides the reference's noise and real): CAFE starts from exactly the images of
    the herding baseline of the same seed."""
    herding = distill("herding", dataset="digits", budget=Budget(ipc=2), seed=3, progress=False, evaluate=False)
    cafe = distill("cafe", dataset="digits", budget=Budget(ipc=2), seed=3, progress=False, evaluate=False,
                   overrides={"steps": 0, "init": "herding", "model_kwargs": {"width": 8}})
    assert torch.equal(cafe.run.summary.x, herding.run.summary.x)
    assert torch.equal(cafe.run.summary.labels, herding.run.summary.labels)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"layer_weights": []}, "at least one weight"),
    ({"layer_weights": [1.0, -0.1]}, "layer_weights"),
    ({"inner_weight": -1.0}, "inner_weight"),
    ({"window": 1}, "window"),
    ({"lambda_1": float("nan")}, "lambda_1"),
    ({"outer_loop": 0}, "outer_loop"),
    ({"lr_decay_at": [1.5]}, "lr_decay_at"),
    ({"init": "zeros"}, "init"),
])
def test_bad_options_are_refused_before_compute(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises((DataValidationError, KeyError), match=message):
        distill("cafe", dataset="digits", budget=Budget(ipc=1), progress=False, evaluate=False,
                overrides={"steps": 1, "model_kwargs": {"width": 8}, **overrides})


def test_a_model_without_layers_is_refused() -> None:
    class Flat(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)

    with pytest.raises(DataValidationError, match=r"nn\.Sequential"):
        layer_features(Flat(), torch.zeros(1, 1, 8, 8))
