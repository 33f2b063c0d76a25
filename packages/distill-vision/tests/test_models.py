from __future__ import annotations

import logging

import pytest
import torch

from distill_core.errors import UnknownNameError
from distill_vision.models import build_model, check_architecture_defaults, list_models


@pytest.mark.parametrize("name", ["convnet", "convnet-bn", "mlp", "lenet", "resnet18"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_models_map_images_to_logits(name: str, shape: tuple[int, int, int]) -> None:
    model = build_model(name, sample_shape=shape, num_classes=7, **({"width": 16} if name != "lenet" else {}))
    x = torch.randn(3, *shape)
    assert model(x).shape == (3, 7)
    assert model.embed(x).shape == (3, model.embed_dim)


def test_convnet_pads_28_to_32_like_the_reference() -> None:
    net = build_model("convnet", sample_shape=(1, 28, 28), num_classes=10)
    assert net.features[0].padding == (3, 3)
    assert net.embed_dim == 128 * 4 * 4  # as for 32x32 inputs
    assert isinstance(net.features[1], torch.nn.GroupNorm) and net.features[1].num_groups == 128


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="convnet"):
        build_model("vgg99", sample_shape=(1, 28, 28), num_classes=10)
    assert "resnet18" in list_models()


def test_warns_when_architecture_changes_without_its_defaults(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_architecture_defaults("mlp", lr_images=0.1)  # ConvNet's DC image lr on an MLP
    assert "mlp" in caplog.text and "0.01" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_architecture_defaults("mlp", lr_images=0.01)
    assert caplog.text == ""
