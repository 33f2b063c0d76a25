"""IDC (multi-formation with IDC's own gradient matching) on digits: the method contract, the reference's
per-dataset choices, and what is matched."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from distill_core.data import Budget
from distill_core.objectives import classwise_gradient_match
from distill_core.runner import distill
from distill_vision.methods.idc import IDC, IDCConfig
from distill_vision.models import build_model
from distill_vision.testing import DigitsContract

#: a short run (the image lr 10x the reference's so that a few updates move the summary)
QUICK: dict[str, Any] = {"steps": 8, "inner_loop": 3, "model_kwargs": {"width": 16}, "n_data": 64,
                         "lr_summary": 1e-3}


class TestIDCContract(DigitsContract):
    """IDC at the floats of 1 image per class (4 decoded samples per class) against 1 random real image per class."""

    method = "idc"
    ipc = 1
    overrides: ClassVar[dict[str, Any]] = QUICK
    beats_random_margin = 5.0

    def test_loss_decreases(self) -> None:
        """Each outer step draws a fresh network, so the per-step losses are not comparable: the matching loss is
        measured instead on 4 fixed networks and fixed real batches, for the initial and the distilled summary."""
        start = distill("idc", dataset="digits", budget=Budget(ipc=1), overrides={**QUICK, "steps": 0},
                        evaluate=False, progress=False)
        end = distill("idc", dataset="digits", budget=Budget(ipc=1), overrides={**QUICK, "steps": 16},
                      evaluate=False, progress=False)
        data = start.data
        assert _fixed_matching_loss(end.run.summary, data) < 0.97 * _fixed_matching_loss(start.run.summary, data)


def _fixed_matching_loss(summary: Any, data: Any) -> float:
    """IDC's loss (L1 between conv-weight gradients, summed over classes) on fixed nets and real batches."""
    x_syn, targets = summary.x.detach(), summary.targets().detach()
    total = 0.0
    for k in range(4):
        torch.manual_seed(k)
        net = build_model("convnet", sample_shape=data.sample_shape, num_classes=10, width=16)
        convs = [p for p in net.parameters() if p.dim() == 4]
        gen = torch.Generator().manual_seed(k)

        def losses(c: int, net: torch.nn.Module = net, gen: torch.Generator = gen) -> tuple[torch.Tensor, torch.Tensor]:
            pool = torch.nonzero(data.y_train == c).flatten()
            real = data.x_train[pool[torch.randperm(len(pool), generator=gen)[:64]]]
            mask = summary.labels == c
            return (F.cross_entropy(net(real), torch.full((len(real),), c)),
                    F.cross_entropy(net(x_syn[mask]), targets[mask]))

        total += float(classwise_gradient_match(net, range(10), losses, metric="l1", params=convs))
    return total


def test_reference_choices_by_dataset() -> None:
    quick = {k: v for k, v in QUICK.items() if k != "lr_summary"}
    outcome = distill("idc", dataset="digits", budget=Budget(ipc=1), overrides={**quick, "steps": 1}, evaluate=False,
                      progress=False)
    config = outcome.artifact.config
    # MNIST-like data: L1 gradient distance, lr_img 1e-4, no cutout; the stored config says what was used
    assert (config["metric"], config["lr_summary"], config["dsa_strategy"]) == ("l1", 1e-4, "color_crop")
    assert config["param"] == "idc" and config["param_options"] == {"factor": 2}
    summary = outcome.run.summary
    assert len(summary.x) == 40 and summary.storage()["stored_floats"] == 10 * 64
    chosen = distill("idc", dataset="digits", budget=Budget(ipc=1), evaluate=False, progress=False,
                     overrides={**quick, "steps": 1, "metric": "mse", "param_options": {"factor": 1}})
    assert chosen.artifact.config["lr_summary"] == 5e-3 and len(chosen.run.summary.x) == 10  # IDC-I


def test_only_convolution_weights_are_matched() -> None:
    net = build_model("convnet", sample_shape=(1, 8, 8), num_classes=10, width=8)
    method = IDC(config=IDCConfig())
    matched = method._matched(net)
    assert matched and all(p.dim() == 4 for p in matched)
    assert len(matched) == sum(1 for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    method_all = IDC(config=IDCConfig(match_all=True))
    assert len(method_all._matched(net)) == len(list(net.parameters()))
