"""TESLA: Scaling Up Dataset Distillation to ImageNet-1K with Constant Memory (Cui et al., ICML 2023,
https://arxiv.org/abs/2211.10586).

MTT's objective with a meta-gradient whose activation memory does not grow with ``syn_steps``: the forward pass keeps
only each student step's parameters, the backward pass recomputes one step at a time in reverse and takes one
vector-Jacobian product per step (``gradient="exact"``, equal to MTT's unrolled gradient). ``gradient="paper"`` is
the paper's Eq. 6 as published (forward-order recomputation with the adjoint held at its final value; it drops the
terms through which an early image moves later gradients, so it is an approximation; constant memory without even
the per-step parameters). Soft labels initialised from the experts' logits and learned (the paper's teacher labels,
used for ImageNet-1K, are the target expert's softmax recomputed every iteration).

Defaults as MTT except ``Iteration`` 10000 in the reference (``steps``). README CIFAR-10 IPC 1: syn_steps 50,
expert_epochs 2, max_start_epoch 5, lr_img 1000, lr_lr 1e-7, lr_teacher 0.01, no ZCA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from distill_core.trajectory import TrajectoryConfig

from .mtt import VisionTrajectoryMatching

__all__ = ["TESLA", "TESLAConfig"]


@dataclass
class TESLAConfig(TrajectoryConfig):
    """TESLA: MTT's options with the constant-memory gradient and learned soft labels (10,000 iterations, label
    logits at lr 2)."""

    defaults = {"steps": 10000, "soft_labels": True, "lr_labels": 2.0}
    gradient: Literal["unrolled", "exact", "paper"] = field(default="exact", metadata={
        "help": "exact per-step recomputation (default), TESLA's Eq. 6 ('paper') or unrolled autograd"})


class TESLA(VisionTrajectoryMatching):
    """Trajectory matching with flat memory in the unrolled steps and soft labels (Cui et al., ICML 2023)."""

    config_class = TESLAConfig
    paper = "https://arxiv.org/abs/2211.10586"
