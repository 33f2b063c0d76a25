"""DATM: Towards Lossless Dataset Distillation via Difficulty-Aligned Trajectory Matching (Guo et al., ICLR 2024,
https://arxiv.org/abs/2310.05773).

MTT with three changes: (1) the start epoch is drawn from a window ``[min_start_epoch, high)`` whose upper end grows
linearly from ``initial_max_start_epoch`` to ``max_start_epoch`` over ``expansion_steps`` outer steps (small IPC:
early, easy segments; large IPC: later ones); (2) images start from real samples the experts classify correctly and
the labels are learned soft labels initialised from the experts' mean logits (soft cross-entropy in the inner
steps and in evaluation); (3) an outer step updates nothing when the matching loss is above ``threshold``.

Defaults: the reference's CIFAR-10 IPC 10 config (syn_steps 80, expert_epochs 2, window 0 / 10 -> 20 over 1000
iterations, lr_img 100, lr_lr 1e-5, lr_teacher 0.01, lr_y 2, threshold 1.0, batch_syn 100, 10000 iterations).
IPC 1: window 0 / 2 -> 4, lr_img 100, lr_lr 1e-7, lr_y 5, batch_syn 10, threshold 1.1; IPC 50: window 0 / 20 -> 40
over 2000, lr_img 1000, batch_syn 500. Departures: no EMA of the images; plain-SGD experts (the reference uses
FTD's sharpness-aware experts trained 100 epochs); labels use the summary optimizer's momentum (0.5, reference 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from distill_core.method import Range
from distill_core.trajectory import TrajectoryConfig

from .mtt import VisionTrajectoryMatching

__all__ = ["DATM", "DATMConfig"]


@dataclass
class DATMConfig(TrajectoryConfig):
    """DATM: a moving start-epoch window, soft labels from experts (lr_y 2), correctly classified initial images;
    10,000 iterations of N = 80 student steps, image lr 100 (lr_img)."""

    defaults = {"steps": 10000, "lr_summary": 100.0, "syn_steps": 80, "soft_labels": True, "lr_labels": 2.0}
    initial_max_start_epoch: int | None = field(default=10, metadata={
        "help": "the window's upper end starts here and grows to max_start_epoch", "range": Range(1)})
    expansion_steps: int = field(default=1000, metadata={"help": "outer steps over which the window grows",
                                                         "range": Range(0)})
    batch_syn: int | None = field(default=100, metadata={"help": "summary samples per student step",
                                                         "range": Range(1)})
    init: Literal["real", "noise", "correct"] = field(default="correct", metadata={
        "help": "initial images: real samples the experts classify correctly"})
    threshold: float | None = field(default=1.0, metadata={
        "help": "skip the update when the matching loss is above this", "range": Range(0, low_open=True)})


class DATM(VisionTrajectoryMatching):
    """Difficulty-aligned trajectory matching with learned soft labels (Guo et al., ICLR 2024)."""

    config_class = DATMConfig
    paper = "https://arxiv.org/abs/2310.05773"
