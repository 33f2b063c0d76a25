"""RFAD on scikit-learn digits: the method contract, the random ConvNet features and Platt scaling."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from distill_core import Budget, distill
from distill_vision.methods.rfad import RFAD, conv_random_features
from distill_vision.testing import DigitsContract

torch.set_num_threads(1)  # tiny problems on shared CI machines

FAST = {"n_models": 2, "width": 32, "target_batch": 200, "n_batches": 1, "lr_summary": 0.01}


class TestRFADContract(DigitsContract):
    method = "rfad"
    overrides: ClassVar[dict[str, Any]] = {"steps": 25, **FAST}


def test_random_convnet_features_follow_the_reference_init() -> None:
    g = torch.Generator().manual_seed(0)
    net = conv_random_features(in_channels=1, image_size=28, generator=g, width=64, depth=3)
    out = net(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 64 * 3 * 3)  # 28 -> 14 -> 7 -> 3, no 28->32 padding
    conv2 = [m for m in net if isinstance(m, torch.nn.Conv2d)][1]
    assert abs(float(conv2.weight.detach().std()) - math.sqrt(2 / (64 * 9))) < 0.01
    assert abs(float(conv2.bias.detach().std()) - 0.1) < 0.04
    again = conv_random_features(in_channels=1, image_size=28, generator=torch.Generator().manual_seed(0), width=64)
    assert torch.equal(again[0].weight, net[0].weight)


def test_platt_scale_is_learned_and_kept_as_method_state() -> None:
    out = distill("rfad", dataset="digits", budget=Budget(ipc=1), seed=0, evaluate=False, progress=False,
                  overrides={"steps": 5, **FAST})
    assert out.run.losses[-1] < out.run.losses[0]
    method = RFAD()
    summary = out.artifact.summary
    method.param_groups(summary)
    method.load_state_dict({"log_scale": torch.tensor(0.3)})
    assert float(method.state_dict()["log_scale"]) == torch.tensor(0.3).item()
    mse = distill("rfad", dataset="digits", budget=Budget(ipc=1), seed=0, evaluate=False, progress=False,
                  overrides={"steps": 5, **FAST, "platt": False})
    assert math.isfinite(mse.run.losses[-1]) and mse.run.losses[-1] < 0.5
