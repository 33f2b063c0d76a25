"""MTT: Dataset Distillation by Matching Training Trajectories (Cazenavette et al., CVPR 2022,
https://arxiv.org/abs/2203.11932).

The student starts from an expert ConvNet's parameters at a random epoch ``t < max_start_epoch``, takes
``syn_steps`` SGD steps on DSA-augmented synthetic images with a learned learning rate, and the images move to bring
its parameters close to the expert's ``M = expert_epochs`` epochs later (plain unrolled autograd: memory grows with
``syn_steps``). Experts (plain SGD, lr 0.01, batch 256, DSA; ZCA when the dataset is given as ``NAME+zca``) are
trained once per dataset and expert protocol and cached (``distill experts``). Hard labels.

All options and their sources: :class:`distill_core.trajectory.TrajectoryConfig`. The papers' per-setting values
for CIFAR-10 (IPC 1 / 10 / 50): syn_steps 50 / 30 / 30, expert_epochs 2, max_start_epoch 2 / 20 / 40, lr_img
100 / 100 / 1000, lr_lr 1e-7 / 1e-5 / 1e-5, lr_teacher 0.01 / 0.001 / 0.001, ZCA for IPC 1 and 10; 5000
iterations; 100 experts of 50 epochs. Evaluation: ConvNet trained 1000 epochs with the learned lr and DSA.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill_core.data import RealData
from distill_core.trajectory import TrajectoryConfig, TrajectoryMatching

from ..modality import default_strategy

__all__ = ["MTT", "MTTConfig", "VisionTrajectoryMatching"]


class VisionTrajectoryMatching(TrajectoryMatching):
    """Trajectory matching on images: ``augment="auto"`` is DSA with the dataset's strategy (no flip on digits)."""

    modality = "vision"

    def default_augment(self, data: RealData) -> str | None:
        return f"dsa:{default_strategy(data.name)}"


@dataclass
class MTTConfig(TrajectoryConfig):
    """MTT's options (the defaults of its ``distill.py``; see :class:`distill_core.trajectory.TrajectoryConfig`)."""


class MTT(VisionTrajectoryMatching):
    """Matching training trajectories with unrolled autograd (Cazenavette et al., CVPR 2022)."""

    config_class = MTTConfig
    paper = "https://arxiv.org/abs/2203.11932"
