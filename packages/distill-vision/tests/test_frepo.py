"""FRePO on scikit-learn digits: the method contract, exact resume of the model pool, pool resets and the
label-margin regulariser."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from distill_core import Budget, distill
from distill_vision.methods.frepo import label_margin_loss
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
    loss = label_margin_loss(values, labels)
    # sample 0: margin 1.0 clamped at 1/3; sample 1: margin 0.05
    assert abs(float(loss) - (-(1 / 3 + 0.05) / 2)) < 1e-6
    (grad,) = torch.autograd.grad(loss, values)
    assert torch.equal(grad[0], torch.zeros(3))  # no pressure once the margin is reached
    assert grad[1, 1] < 0 < grad[1, 0]
