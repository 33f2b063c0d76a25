"""DCC / DSAC on digits: the method contract, the warm-up (DC's loss, bit for bit) and the contrastive loss after it,
the loss itself against its definition, the reference's loop table and bad options."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from distill_core.data import Budget
from distill_core.errors import DataValidationError, DistillError
from distill_core.objectives import classwise_gradient_match, gradient_match_distance
from distill_core.runner import distill
from distill_vision.methods.dcc import contrastive_gradient_match, dcc_loop_schedule
from distill_vision.models import build_model
from distill_vision.testing import QUICK_OBJECTIVES, ConvNetDigitsContract


class TestDCCContract(ConvNetDigitsContract):
    method = "dcc"


class TestDSACContract(ConvNetDigitsContract):
    """DCC with DSA's Siamese augmentation of the matching."""

    method = "dsac"
    overrides = {"steps": 20, **QUICK_OBJECTIVES["dcc"]}


def _run(method: str, **overrides: Any) -> Any:
    base = {"steps": 4, "model_kwargs": {"width": 16}, "batch_real": 32, "outer_loop": 1, "inner_loop": 1}
    return distill(method, dataset="digits", budget=Budget(ipc=2), seed=3, progress=False, evaluate=False,
                   overrides={**base, **overrides}).run


def test_warm_up_is_dc_and_the_contrastive_loss_follows() -> None:
    dc = _run("dc")
    dcc = _run("dcc", outer_warmup=2)
    assert dcc.losses[:2] == dc.losses[:2]  # the same loss and the same random draws during the warm-up
    assert all(a != b for a, b in zip(dcc.losses[2:], dc.losses[2:]))
    assert not torch.equal(dcc.summary.x, dc.summary.x)
    # a warm-up longer than the run is DC exactly
    assert torch.equal(_run("dcc", outer_warmup=4).summary.x, dc.summary.x)


def test_inner_warmup_counts_image_updates_within_a_step() -> None:
    dc = _run("dc", steps=1, outer_loop=3)
    dcc = _run("dcc", steps=1, outer_loop=3, outer_warmup=100, inner_warmup=1)
    assert len(dcc.summary.x) == 20 and dcc.losses != dc.losses
    # update 0 is class-wise: the first update leaves the same images as DC's
    first_dc = _run("dc", steps=1, outer_loop=1)
    first_dcc = _run("dcc", steps=1, outer_loop=1, outer_warmup=100, inner_warmup=1)
    assert torch.equal(first_dcc.summary.x, first_dc.summary.x)


def _tiny_batches(digits: Any, classes: list[int]) -> tuple[torch.nn.Module, list[tuple[torch.Tensor, torch.Tensor]],
                                                             torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = build_model("convnet", sample_shape=(1, 8, 8), num_classes=10, width=8)
    real = []
    for c in classes:
        x = digits.x_train[digits.y_train == c][:12]
        real.append((x, torch.full((len(x),), c)))
    x_syn = torch.cat([digits.x_train[digits.y_train == c][20:22] for c in classes]).requires_grad_(True)
    targets = F.one_hot(torch.tensor(classes).repeat_interleave(2), 10).float()
    return net, real, x_syn, targets


def test_contrastive_loss_matches_its_definition(digits: Any) -> None:
    net, real, x_syn, targets = _tiny_batches(digits, [0, 3, 7])
    params = list(net.parameters())
    g_real = [torch.zeros_like(p) for p in params]
    for x, y in real:
        for acc, g in zip(g_real, torch.autograd.grad(F.cross_entropy(net(x), y), params)):
            acc += g / 3
    g_syn = torch.autograd.grad(-(targets * F.log_softmax(net(x_syn), -1)).sum(-1).mean(), params, create_graph=True)
    expected = gradient_match_distance(g_real, g_syn, metric="ours")
    got = contrastive_gradient_match(net, real, x_syn, targets)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert torch.autograd.grad(got, x_syn)[0].abs().sum() > 0

    # DC's class-wise loss on the same batches is another number
    def losses(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = real[i]
        return (F.cross_entropy(net(x), y),
                -(targets[2 * i:2 * i + 2] * F.log_softmax(net(x_syn[2 * i:2 * i + 2]), -1)).sum(-1).mean())

    classwise = classwise_gradient_match(net, range(3), losses)
    assert not torch.allclose(classwise, got, rtol=1e-3)


def test_one_class_contrastive_is_class_wise(digits: Any) -> None:
    net, real, x_syn, targets = _tiny_batches(digits, [4])

    def losses(_: int) -> tuple[torch.Tensor, torch.Tensor]:
        return F.cross_entropy(net(real[0][0]), real[0][1]), -(targets * F.log_softmax(net(x_syn), -1)).sum(-1).mean()

    assert torch.allclose(contrastive_gradient_match(net, real, x_syn, targets),
                          classwise_gradient_match(net, [0], losses), rtol=1e-5, atol=1e-6)


def test_loop_table_is_the_references() -> None:
    assert dcc_loop_schedule(1) == (10, 5)  # DC's is (1, 1)
    assert dcc_loop_schedule(10) == (10, 50)
    assert dcc_loop_schedule(50) == (50, 10)


def test_dsac_resolves_the_strategy_by_dataset() -> None:
    outcome = distill("dsac", dataset="digits", budget=Budget(ipc=1), progress=False, evaluate=False,
                      overrides={"steps": 1, "model_kwargs": {"width": 8}, "batch_real": 8, "outer_loop": 1,
                                 "outer_warmup": 0})
    assert outcome.artifact.config["dsa_strategy"] == "color_crop_cutout_scale_rotate"  # no flip on digits


@pytest.mark.parametrize(("overrides", "error", "message"), [
    ({"outer_warmup": -1}, DataValidationError, "outer_warmup"),
    ({"inner_warmup": 1.5}, DataValidationError, "inner_warmup"),
    ({"metric": "euclid"}, DistillError, "metric"),
    ({"dsa_strategy": "color_twist"}, DistillError, "twist"),
])
def test_bad_options_are_refused_before_compute(overrides: dict[str, Any], error: type[Exception],
                                                message: str) -> None:
    with pytest.raises(error, match=message):
        distill("dcc", dataset="digits", budget=Budget(ipc=1), progress=False, evaluate=False,
                overrides={"steps": 1, "model_kwargs": {"width": 8}, **overrides})


def test_a_warm_up_longer_than_the_run_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="distill_vision.methods.dcc"):
        _run("dcc", steps=1)
    assert "never used" in caplog.text
