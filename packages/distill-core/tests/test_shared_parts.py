"""The parts methods share: soft cross-entropy, training on the summary, class-wise gradient matching, DC's loop
schedule, the uniform real sampler, a custom backward in ``StepContext.update``, model selection and ``finalize``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core import Budget, Distiller, RealData, StepContext, Summary, distill, get_method
from distill_core.checkpoint import CHECKPOINT, load_state
from distill_core.objectives import (
    classwise_gradient_match,
    gradient_match_distance,
    loop_schedule,
    soft_cross_entropy,
    train_on_summary,
)
from distill_core.selection import ModelSelection
from distill_core.testing import InterruptAt

TOY = "test_toy_dm"


def test_soft_cross_entropy_is_cross_entropy_on_one_hot_rows() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(7, 4, generator=g), torch.randint(0, 4, (7,), generator=g)
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(y, 4).float()), F.cross_entropy(logits, y))
    soft = torch.softmax(torch.randn(7, 4, generator=g), -1)
    manual = -(soft * torch.log(torch.softmax(logits, -1))).sum(1).mean()
    assert torch.allclose(soft_cross_entropy(logits, soft), manual, atol=1e-6)


def test_train_on_summary_fits_and_repeats(blobs: RealData) -> None:
    def fit(seed: int) -> tuple[float, Tensor]:
        torch.manual_seed(seed)
        net = nn.Linear(8, 3)
        targets = F.one_hot(blobs.y_train, 3).float()
        before = float(soft_cross_entropy(net(blobs.x_train), targets))
        train_on_summary(net, blobs.x_train, targets, epochs=5, batch_size=16,
                         optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
                         generator=torch.Generator().manual_seed(seed))
        return before - float(soft_cross_entropy(net(blobs.x_train), targets)), net.weight.detach().clone()

    gain, w = fit(0)
    assert gain > 0.3
    assert torch.equal(w, fit(0)[1]) and not torch.equal(w, fit(1)[1])


def test_classwise_gradient_match_equals_the_hand_written_sum(blobs: RealData) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))
    x_syn = blobs.x_train[::20].clone().requires_grad_(True)
    y_syn = blobs.y_train[::20]

    def losses(c: int) -> tuple[Tensor, Tensor]:
        real = blobs.x_train[blobs.y_train == c]
        return (F.cross_entropy(net(real), torch.full((len(real),), c)),
                F.cross_entropy(net(x_syn[y_syn == c]), y_syn[y_syn == c]))

    got = classwise_gradient_match(net, range(3), losses, metric="ours")
    params = list(net.parameters())
    want = sum(gradient_match_distance(
        [g.detach() for g in torch.autograd.grad(losses(c)[0], params)],
        torch.autograd.grad(losses(c)[1], params, create_graph=True)) for c in range(3))
    assert torch.allclose(got, want)
    (grad,) = torch.autograd.grad(got, x_syn)
    assert grad.abs().sum() > 0  # differentiable in the synthetic samples
    with pytest.raises(ValueError, match="at least one class"):
        classwise_gradient_match(net, [], losses)
    # params=: only those gradients count (IDC matches the weights, not the biases)
    weights = [p for p in params if p.dim() == 2]
    only = classwise_gradient_match(net, range(3), losses, metric="l1", params=weights)
    want_l1 = sum(gradient_match_distance(
        [g.detach() for g in torch.autograd.grad(losses(c)[0], weights)],
        torch.autograd.grad(losses(c)[1], weights, create_graph=True), metric="l1") for c in range(3))
    assert torch.allclose(only, want_l1)
    assert not torch.allclose(only, classwise_gradient_match(net, range(3), losses, metric="l1"))


def test_loop_schedule_is_dcs_table() -> None:
    assert [loop_schedule(i) for i in (1, 10, 50)] == [(1, 1), (10, 50), (50, 10)]
    assert loop_schedule(12) == (10, 50) and loop_schedule(15) == (10, 50)


def _ctx(blobs: RealData, summary: Summary, optimizer: torch.optim.Optimizer, seed: int = 0) -> StepContext:
    from distill_core import ClassIndex, get_modality

    return StepContext(step=0, seed=seed, data=blobs, class_index=ClassIndex(blobs.y_train, 3),
                       modality=get_modality("toy"), device=torch.device("cpu"),
                       generator=torch.Generator().manual_seed(seed), optimizer=optimizer, summary=summary,
                       method=get_method(TOY)())


def test_update_with_a_custom_backward(blobs: RealData, make_summary: Any) -> None:
    summary = make_summary(blobs)
    x0 = summary.x.detach().clone()
    opt = torch.optim.SGD([summary.x], lr=0.5)
    ctx = _ctx(blobs, summary, opt)

    def backward() -> None:
        summary.x.grad = torch.ones_like(summary.x)

    assert ctx.update(3.0, backward=backward) == 3.0
    assert torch.allclose(summary.x.detach(), x0 - 0.5)
    with pytest.raises(FloatingPointError, match="outer loss is nan"):
        ctx.update(float("nan"), backward=backward)

    def bad() -> None:
        summary.x.grad = torch.full_like(summary.x, float("inf"))

    with pytest.raises(FloatingPointError, match="not finite"):
        ctx.update(1.0, backward=bad)
    with pytest.raises(TypeError, match="backward function"):
        ctx.update(1.0)


def test_sample_uniform(blobs: RealData, make_summary: Any) -> None:
    summary = make_summary(blobs)
    ctx = _ctx(blobs, summary, torch.optim.SGD([summary.x], lr=0.1))
    x, y = ctx.sample_uniform(500)
    assert x.shape == (500, 8) and torch.equal(blobs.x_train[(blobs.x_train[None] == x[:, None]).all(-1).float()
                                                              .argmax(1)], x)
    assert set(torch.bincount(y).tolist()) != {0} and len(torch.unique(y)) == 3  # all classes, with replacement


class _Scripted:
    """A validation whose scores follow a script by step, so the kept step is known."""

    def __init__(self, scores: dict[int, float]) -> None:
        self.scores = scores
        self.calls: list[int] = []

    def __call__(self, distiller: Distiller, step: int) -> dict[str, float]:
        self.calls.append(step)
        return {"acc": self.scores.get(step, 0.0), "loss": -self.scores.get(step, 0.0)}


class _Selecting(get_method(TOY)):  # type: ignore[misc, valid-type]
    """The toy DM with a scripted model selection every 2 steps."""

    name = "test_selecting"
    script: dict[int, float] = {2: 50.0, 4: 70.0, 6: 60.0, 8: 65.0}

    def callbacks(self, data: RealData, device: torch.device) -> list[Any]:
        self.validation = _Scripted(self.script)
        return [ModelSelection(validate=self.validation, metric="acc", due=2, rule="best scripted acc")]

    def finalize(self, summary: Any, data: RealData) -> Summary:
        summary.finalized = True
        return summary


@pytest.fixture
def selecting(monkeypatch: pytest.MonkeyPatch) -> type:
    from distill_core import registry

    monkeypatch.setitem(registry._METHODS, "test_selecting", _Selecting)
    return _Selecting


def test_model_selection_keeps_the_best_step_and_records_it(selecting: type, tmp_path: Path) -> None:
    outcome = distill("test_selecting", dataset="blobs", budget=Budget(ipc=2), overrides={"steps": 8},
                      evaluate=False, progress=False, out_dir=tmp_path / "a")
    extra = outcome.artifact.extra
    assert extra["selection"] == "best scripted acc" and extra["selection_metric"] == "acc"
    assert extra["kept_step"] == 4 and extra["kept_score"] == 70.0
    assert [h["step"] for h in extra["val_history"]] == [2, 4, 6, 8]
    # the saved summary is the one of step 4, not the final one
    at4 = distill(TOY, dataset="blobs", budget=Budget(ipc=2), overrides={"steps": 4}, evaluate=False,
                  progress=False).artifact.summary.x
    final = distill(TOY, dataset="blobs", budget=Budget(ipc=2), overrides={"steps": 8}, evaluate=False,
                    progress=False).artifact.summary.x
    assert torch.equal(outcome.artifact.summary.x, at4) and not torch.equal(at4, final)
    assert getattr(outcome.artifact.summary, "finalized", False)


def test_model_selection_state_is_checkpointed_and_resumed(selecting: type, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"dataset": "blobs", "budget": Budget(ipc=2), "evaluate": False, "progress": False,
                          "overrides": {"steps": 8}}
    straight = distill("test_selecting", **kw).artifact
    with pytest.raises(KeyboardInterrupt):
        distill("test_selecting", out_dir=tmp_path / "r", checkpoint_every=1, callbacks=[InterruptAt(5)], **kw)
    state = load_state(tmp_path / "r" / CHECKPOINT)
    assert state["step"] == 4
    (saved,) = state["callbacks"].values()
    assert saved["best"] == {"step": 4, "score": 70.0} and torch.is_tensor(saved["kept"]["x"])
    resumed = distill("test_selecting", out_dir=tmp_path / "r", resume=True, **kw).artifact
    assert resumed.extra["kept_step"] == 4 and resumed.extra["val_history"] == straight.extra["val_history"]
    assert torch.equal(resumed.summary.x, straight.summary.x)


def test_grid_rows_are_labelled() -> None:
    from distill_core.imaging import label_rows, make_grid, text_image

    one = text_image("1")
    assert one.shape == (5, 3) and one[:, 1].eq(0).all() and one[0, 2] == 1.0  # the stem of a "1" is ink
    assert text_image("Ab?").shape == (5, 11) and text_image("?").eq(1.0).all()  # unknown characters are blank
    grid = make_grid(torch.rand(4, 1, 8, 8), nrow=2)
    labelled = label_rows(grid, ["0 zero", "1 one"], tile=8)
    margin = labelled.shape[2] - grid.shape[2]
    assert margin == 4 * 6 - 1 + 4 and torch.equal(labelled[:, :, margin:], grid)
    assert labelled[:, 2:7, 2:margin].lt(1).any() and labelled[:, 12:17, 2:margin].lt(1).any()  # ink in both rows


def test_a_config_changes_inherited_defaults_without_redeclaring_them() -> None:
    import dataclasses
    from dataclasses import dataclass, field

    from distill_core.method import Method, MethodConfig, config_from_dict
    from distill_core.objectives.gradient_matching import GradientMatchingConfig

    @dataclass
    class Changed(GradientMatchingConfig):
        defaults = {"steps": 7, "optimizer": "adam", "batch_real": 3, "param_options": {"factor": 2}}
        width: int = field(default=5, metadata={"help": "channels"})

    fields = {f.name: f for f in dataclasses.fields(Changed)}
    base = {f.name: f for f in dataclasses.fields(GradientMatchingConfig)}
    cfg = Changed()
    assert (cfg.steps, cfg.optimizer, cfg.batch_real, cfg.width) == (7, "adam", 3, 5)
    assert fields["steps"].metadata == base["steps"].metadata  # help and range kept from the declaration
    assert "defaults" not in fields and GradientMatchingConfig().steps == 1000  # the base is untouched
    cfg.param_options["factor"] = 4
    assert Changed().param_options == {"factor": 2}  # a mutable default is copied per instance
    with pytest.raises(Exception, match="optimizer"):  # the declared type still checks values
        config_from_dict(Changed, {"optimizer": "lamb"})
    with pytest.raises(Exception, match=r"batch_real.*must be"):
        config_from_dict(Changed, {"batch_real": 0})
    with pytest.raises(TypeError, match="no base config declares"):
        @dataclass
        class Unknown(MethodConfig):
            defaults = {"stepz": 3}
    with pytest.raises(TypeError, match="both declares"):
        @dataclass
        class Twice(MethodConfig):
            defaults = {"steps": 3}
            steps: int = 4

    from distill_core.objectives.krr import KernelRegressionConfig

    @dataclass
    class Mixed(GradientMatchingConfig, KernelRegressionConfig):  # options of two bases, each typed where declared
        defaults = {"reg": 1e-3, "metric": "mse"}

    assert (Mixed().reg, Mixed().metric, Mixed().float64) == (1e-3, "mse", True)
    with pytest.raises(Exception, match="metric"):
        config_from_dict(Mixed, {"metric": "l7"})

    class Inferred(Method[Changed]):
        pass

    class Explicit(Inferred):
        config_class = GradientMatchingConfig

    assert Inferred.config_class is Changed and Explicit.config_class is GradientMatchingConfig
    assert isinstance(Inferred().config, Changed)
