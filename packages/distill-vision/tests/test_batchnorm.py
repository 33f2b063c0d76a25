"""DM and DC with a BatchNorm ConvNet follow the reference: DM embeds every class's real batch in one forward and
all synthetic images in another (statistics over all classes); DC sets the running statistics on real images of
every class and freezes them before each matching update."""

from __future__ import annotations

import pytest
import torch

from distill_core.data import Budget
from distill_core.runner import distill
from distill_vision.methods.dm import joint_class_means
from distill_vision.models import build_model, has_batchnorm


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


def test_dc_freezes_batchnorm_on_all_classes_before_each_matching_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference's handling (DC main.py): a training-mode forward over 16 real images per class sets the
    running statistics, then BatchNorm is in eval mode while the gradients are matched."""
    from distill_vision.methods.dc import DC

    seen: list[tuple[int, bool, bool]] = []
    freeze, match = DC.freeze_batchnorm, DC.matching_loss

    def spy_freeze(self: DC, net: torch.nn.Module, ctx) -> None:  # type: ignore[no-untyped-def]
        bn = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
        before = bn.num_batches_tracked.clone()
        freeze(self, net, ctx)
        seen.append((int(bn.num_batches_tracked - before), bn.training, bool(bn.running_mean.abs().sum() > 0)))

    def spy_match(self: DC, net: torch.nn.Module, summary, ctx, *, update: int = 0):  # type: ignore[no-untyped-def]
        assert not any(m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
        return match(self, net, summary, ctx, update=update)

    monkeypatch.setattr(DC, "freeze_batchnorm", spy_freeze)
    monkeypatch.setattr(DC, "matching_loss", spy_match)
    out = distill("dc", dataset="digits", budget=Budget(ipc=1), seed=0, evaluate=False, progress=False,
                  overrides={"steps": 3, "model": "convnet-bn", "model_kwargs": {"width": 16}, "batch_real": 16,
                             "outer_loop": 2, "inner_loop": 1})
    assert seen == [(1, False, True)] * 6  # one statistics forward, then frozen, before each of 2 updates per step
    assert torch.isfinite(out.run.summary.x).all()


def test_dc_with_instance_norm_draws_as_before() -> None:
    """Without BatchNorm nothing extra is drawn: the summary of a ConvNet run does not depend on the new option."""
    common = {"steps": 2, "model_kwargs": {"width": 16}, "batch_real": 16}
    a = distill("dc", dataset="digits", budget=Budget(ipc=1), seed=2, evaluate=False, progress=False,
                overrides=common).run.summary.x
    b = distill("dc", dataset="digits", budget=Budget(ipc=1), seed=2, evaluate=False, progress=False,
                overrides={**common, "bn_batch_per_class": 3}).run.summary.x
    assert torch.equal(a, b)
