"""RFAD: random-feature approximation of the ConvNet NNGP for dataset distillation (Loo, Hasani, Amini & Rus,
NeurIPS 2022, https://arxiv.org/abs/2210.12067).

Every outer step draws ``n_models`` fresh *wide* ConvNets without their readout (conv3x3 -> ReLU -> avg-pool,
no normalisation, Gaussian init ``N(0, 2/fan_in)``, biases ``N(0, 0.1²)``). Their concatenated features, divided
by ``sqrt(M · D)``, give the random-feature estimate of the ConvNet's NNGP, ``K = 2 ΦΦᵀ + 0.01``. Random real
target batches are predicted by kernel ridge regression from the summary (ridge ``5e-3 · trace(K)/n``) and the loss
is the cross-entropy of the Platt-scaled predictions ``exp(s) · K_ts α`` (``s`` learned, init 0), or ``0.5 · MSE``
to centred one-hot labels without Platt scaling (yolky/RFAD).

Deviations from the reference, all documented in the config: Adam replaces AdaBelief (not in torch); the optional
learnable d x d input transform is not implemented; early stopping on a validation split is left to the caller.
Target features are computed without autograd, one block at a time, so memory does not grow with the target batch.

Under ``torch.distributed`` (``torchrun``) the target side is split in row blocks (``shards_targets``): every rank
draws each whole target batch from the step's generator and computes the features and loss terms of its contiguous
block of rows (:meth:`~distill_core.method.StepContext.own_rows`); the random networks, the summary's features and
the KRR solve are computed by every rank alike, and the gradients of the images and of the Platt scale are summed
over the ranks before the update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.evaluation_krr import one_hot_centred
from distill_core.kernels import RandomFeatureNNGP, random_feature_kernel
from distill_core.method import StepContext
from distill_core.objectives import krr_solve
from distill_core.objectives.krr import KernelRegressionConfig
from distill_core.synset import Summary

from ._base import VisionMethod

__all__ = ["RFAD", "RFADConfig", "conv_random_features", "conv_rf_kernel"]


def conv_random_features(*, in_channels: int, image_size: int, generator: torch.Generator, width: int = 256,
                         depth: int = 3, w_var: float = 2.0, b_std: float = 0.1) -> nn.Module:
    """One random wide ConvNet feature map (RFAD's ``ConvNet_wide`` with the readout removed).

    ``depth`` blocks of conv3x3 (padding 1) -> ReLU -> AvgPool 2x2, then flatten; weights ``N(0, w_var/fan_in)``,
    biases ``N(0, b_std²)``, drawn from ``generator``. 28x28 inputs are not padded (feature map 3x3 at depth 3).

    Shapes:
        input ``(N, C, H, W)``; output ``(N, width · (H/2^depth)²)``.
    """
    depth = max(1, min(depth, int(math.log2(image_size))))
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(depth):
        conv = nn.Conv2d(channels, width, 3, padding=1)
        with torch.no_grad():
            conv.weight.normal_(0.0, math.sqrt(w_var / (channels * 9)), generator=generator)
            conv.bias.normal_(0.0, b_std, generator=generator)
        layers += [conv, nn.ReLU(), nn.AvgPool2d(2)]
        channels = width
    return nn.Sequential(*layers, nn.Flatten())


def conv_rf_kernel(*, sample_shape: tuple[int, ...], n_models: int = 8, width: int = 256, depth: int = 3,
                   device: torch.device | str = "cpu") -> RandomFeatureNNGP:
    """The RFAD kernel for images of ``sample_shape``: call ``resample(generator)`` before use."""
    channels, size = sample_shape[0], sample_shape[-1]
    return RandomFeatureNNGP(
        make_model=lambda g: conv_random_features(in_channels=channels, image_size=size, generator=g, width=width,
                                                  depth=depth),
        n_models=n_models, w_var=2.0, b_var=0.01, device=device)


@dataclass
class RFADConfig(KernelRegressionConfig):
    """RFAD hyper-parameters (reference: yolky/RFAD run_distillation.py / distillation.py defaults): 10,000 outer
    steps (the reference runs up to 100,000 with validation-based early stopping), Adam at lr 1e-3 over the images
    (the reference uses AdaBelief), fixed centred one-hot regression labels unless ``learn_labels``
    (--learn_labels), ridge 5e-3."""

    defaults = {"steps": 10000, "lr_summary": 1e-3, "reg": 5e-3}
    n_models: int = field(default=8, metadata={"help": "random ConvNets per step (redrawn every step)"})
    width: int = field(default=256, metadata={"help": "channels of the random ConvNets (k=2 x 128)"})
    depth: int = field(default=3, metadata={"help": "conv blocks of the random ConvNets"})
    platt: bool = field(default=True, metadata={"help": "Platt-scaled cross-entropy loss (else 0.5 MSE)"})
    lr_platt: float = field(default=1e-2, metadata={"help": "learning rate of the Platt log-scale"})
    target_batch: int = field(default=1280, metadata={"help": "real images per target batch (not class-balanced)"})
    n_batches: int = field(default=4, metadata={"help": "target batches per step (their losses are averaged)"})
    block_size: int = field(default=512, metadata={"help": "target images per feature block"})


class RFAD(VisionMethod[RFADConfig]):
    """Random-feature NNGP distillation with Platt-scaled cross-entropy (Loo et al., NeurIPS 2022)."""

    paper = "https://arxiv.org/abs/2210.12067"
    shards_targets = True

    #: the learned log temperature of the Platt scaling, made by :meth:`param_groups` when ``platt`` is on
    log_scale: nn.Parameter | None = None

    def param_groups(self, summary: Summary) -> list[dict[str, Any]]:
        groups = super().param_groups(summary)
        if self.config.platt:
            self.log_scale = nn.Parameter(torch.zeros((), device=summary.x.device))
            groups.append({"params": [self.log_scale], "lr": self.config.lr_platt})
        return groups

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """Platt-scaled cross-entropy (or 0.5 MSE) of the random-feature KRR predictions of real target batches.

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        cfg = self.config
        kernel = conv_rf_kernel(sample_shape=ctx.data.sample_shape, n_models=cfg.n_models, width=cfg.width,
                                depth=cfg.depth, device=ctx.device)
        kernel.resample(ctx.generator)
        phi_s = kernel.features(summary.x)
        targets = summary.targets() if cfg.learn_labels else summary.targets().detach()
        alpha = krr_solve(random_feature_kernel(phi_s, phi_s), targets, reg=cfg.reg, float64=cfg.float64)
        total = summary.x.new_zeros(())
        for _ in range(cfg.n_batches):
            # every rank draws the whole batch; under torch.distributed it computes its block of rows (sums of
            # per-row losses over the whole batch size, so the ranks' shares add up to the batch mean)
            x_t, y_t = ctx.sample_uniform(cfg.target_batch)
            with torch.no_grad():  # target features: constants, one block at a time
                phi_t = torch.cat([kernel.features(x_t[i:i + cfg.block_size].to(ctx.device))
                                   for i in range(0, len(x_t), cfg.block_size)])
            pred = random_feature_kernel(phi_t, phi_s) @ alpha
            if cfg.platt:
                assert self.log_scale is not None
                rows = F.cross_entropy(self.log_scale.exp() * pred, y_t, reduction="sum")
            else:
                rows = 0.5 * ((pred - one_hot_centred(y_t, ctx.data.num_classes)) ** 2).sum() / ctx.data.num_classes
            total = total + rows / cfg.target_batch
        return total / cfg.n_batches

    def state_dict(self) -> dict[str, Any]:
        return {} if self.log_scale is None else {"log_scale": self.log_scale.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "log_scale" in state and self.log_scale is not None:
            self.log_scale.data.copy_(state["log_scale"])
