"""FRePO on scikit-learn digits: the method contract, exact resume of the model pool, pool resets and the
label-margin regulariser."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import torch

from distill_core import Budget, distill
from distill_core.evaluation_krr import one_hot_centred
from distill_core.objectives import krr_loss
from distill_vision.methods.frepo import FRePO, FRePOConfig, label_margin_loss
from distill_vision.testing import DigitsContract

torch.set_num_threads(1)  # tiny problems on shared CI machines

FAST = {"model_kwargs": {"width": 32}, "num_models": 3, "max_online_updates": 4, "target_batch": 256,
        "lr_summary": 0.01, "lr_model": 0.003}


class TestFRePOContract(DigitsContract):
    method = "frepo"
    overrides: ClassVar[dict[str, Any]] = {"steps": 25, **FAST}


def _run(steps: int, out: Path | None, resume: bool = False):  # type: ignore[no-untyped-def]
    return distill("frepo", dataset="digits", budget=Budget(ipc=1), seed=3, evaluate=False, progress=False,
                   overrides={**FAST, "steps": steps}, out_dir=out, resume=resume, checkpoint_every=1)


def test_resume_is_exact_with_the_model_pool(tmp_path: Path) -> None:
    straight = _run(7, None).artifact.summary
    _run(4, tmp_path / "run")  # stops after 4 steps (a pool member has been reset by then)
    resumed = _run(7, tmp_path / "run", resume=True)
    assert resumed.run.resumed_from == 4
    assert torch.equal(resumed.artifact.summary.x, straight.x)
    assert torch.equal(resumed.artifact.summary.targets(), straight.targets())


def test_label_margin_loss() -> None:
    labels = torch.tensor([0, 1])
    values = torch.tensor([[0.9, -0.1, -0.1], [0.2, 0.25, 0.0]], requires_grad=True)
    for kind in ("top2", "true_class"):  # each label's own class leads: both margins agree
        loss = label_margin_loss(values, labels, kind=kind)
        # sample 0: margin 1.0 clamped at 1/3; sample 1: margin 0.05
        assert abs(float(loss) - (-(1 / 3 + 0.05) / 2)) < 1e-6
        (grad,) = torch.autograd.grad(loss, values)
        assert torch.equal(grad[0], torch.zeros(3))  # no pressure once the margin is reached
        assert grad[1, 1] < 0 < grad[1, 0]


def test_label_margin_follows_the_reference_top1_minus_top2() -> None:
    """The reference's ``lb_margin_th`` (the default) takes the gap between a label's two largest entries, whatever
    their classes: a label led by another class is kept decisive, not pulled back. ``true_class`` (this module's
    former margin) measures the labelled class against the rest and pulls it back."""
    assert FRePOConfig().label_margin_kind == "top2"
    labels = torch.tensor([0])
    values = torch.tensor([[0.1, 0.2, 0.0]], requires_grad=True)  # class 1 leads a label of class 0
    top2 = label_margin_loss(values, labels)
    assert abs(float(top2) - (-0.1)) < 1e-6
    (grad,) = torch.autograd.grad(top2, values)
    assert grad[0, 1] < 0 < grad[0, 0]  # descent widens the lead of the largest entry (class 1)
    true_class = label_margin_loss(values, labels, kind="true_class")
    assert abs(float(true_class) - 0.1) < 1e-6
    (grad,) = torch.autograd.grad(true_class, values)
    assert grad[0, 0] < 0 < grad[0, 1]  # descent raises the labelled class
    assert float(label_margin_loss(values.detach())) == float(top2)  # top2 needs no classes


def test_margin_weight_is_the_references() -> None:
    """The reference adds the margin to the squared error summed over classes (``mean_squared_loss``); the core's
    ``krr_loss`` averages over classes, so the margin enters divided by C (the reference's loss / C)."""
    outcome = distill("frepo", dataset="digits", budget=Budget(ipc=1), seed=0, evaluate=False, progress=False,
                      overrides={**FAST, "steps": 0})
    summary, data = outcome.artifact.summary, outcome.data
    with torch.no_grad():
        summary.label_values[0, 1] = summary.label_values[0, 0] - 0.02  # margin 0.02 < 1/C: the term is active
    x_t, y_t = data.x_train[:64], data.y_train[:64]
    ctx = SimpleNamespace(sample_uniform=lambda n: (x_t, y_t), data=data)
    method = FRePO(config=FRePOConfig(**FAST))
    method.setup(summary, data, torch.device("cpu"))
    loss = method.outer_loss(summary, ctx)  # type: ignore[arg-type]
    model = method.pool[method.current]
    with torch.no_grad():
        f_t, f_s = model.embed(x_t), model.embed(summary.x)
        kernel = krr_loss(f_t @ f_s.T, f_s @ f_s.T, summary.targets(), one_hot_centred(y_t, 10), reg=1e-6,
                          float64=True)
        margin = label_margin_loss(summary.label_values)
    assert float(margin) > -0.1  # one label below the cap
    assert torch.allclose(loss, kernel + margin / 10, rtol=1e-5, atol=1e-7)
