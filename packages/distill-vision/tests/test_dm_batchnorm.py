"""DM with a BatchNorm ConvNet follows the reference's ConvNetBN branch: one forward over every class's real batch
and one over every synthetic image, so the normalisation statistics span all classes."""

from __future__ import annotations

import pytest
import torch

from distill_core.data import Budget
from distill_core.runner import distill
from distill_vision.methods.dm import has_batchnorm, joint_class_means
from distill_vision.models import build_model


def test_joint_means_use_statistics_over_all_batches() -> None:
    torch.manual_seed(0)
    net = build_model("convnet-bn", sample_shape=(1, 8, 8), num_classes=3, width=8, depth=2)
    assert has_batchnorm(net) and not has_batchnorm(build_model("convnet", sample_shape=(1, 8, 8), num_classes=3,
                                                                 width=8, depth=2))
    batches = [torch.randn(5, 1, 8, 8) + 2 * c for c in range(3)]  # classes with different means
    joint = joint_class_means(net, batches)
    everything = net.embed(torch.cat(batches))  # type: ignore[operator]
    assert torch.allclose(joint, torch.stack([everything[5 * c:5 * c + 5].mean(0) for c in range(3)]), atol=1e-6)
    alone = torch.stack([net.embed(b).mean(0) for b in batches])  # type: ignore[operator]
    assert not torch.allclose(joint, alone, atol=1e-2)  # per-class forwards normalise each class by itself


def test_dm_learns_with_a_batchnorm_network(monkeypatch: pytest.MonkeyPatch) -> None:
    from distill_vision.methods import dm

    calls: list[int] = []

    def spy(net: torch.nn.Module, batches: list[torch.Tensor]) -> torch.Tensor:
        calls.append(len(batches))
        return joint_class_means(net, batches)

    monkeypatch.setattr(dm, "joint_class_means", spy)
    out = distill("dm", dataset="digits", budget=Budget(ipc=2), seed=0, evaluate=False, progress=False,
                  overrides={"steps": 24, "model": "convnet-bn", "model_kwargs": {"width": 32}, "batch_real": 64,
                             "lr_summary": 10.0})
    losses = out.run.losses
    assert sum(losses[-6:]) / 6 < 0.7 * sum(losses[:6]) / 6, losses
    assert torch.isfinite(out.run.summary.x).all()
    assert calls == [10, 10] * 24  # every step: one joint forward of the 10 real batches, one of the 10 synthetic
