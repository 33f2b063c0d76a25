"""IDC: Dataset Condensation via Efficient Synthetic-Data Parameterization (Kim et al., ICML 2022,
https://arxiv.org/abs/2205.14959).

IDC is a parameterization and a matching procedure. The parameterization is multi-formation (``--param idc``, in
:mod:`distill_vision.params.idc`, the default here with factor 2; ``--set param_options='{"factor": 1}'`` is IDC-I).
The matching is gradient matching per class between a real batch and the class's *decoded* synthetic samples,
augmented with one shared (Siamese) DSA draw, in which:

- only the convolution weights are matched (not the norm layers, biases or the classifier);
- the distance is the L1 distance of the gradients on MNIST and Fashion-MNIST and their squared L2 distance
  elsewhere (the reference's ``l1`` / ``mse``), with the image learning rate that goes with it (1e-4 / 5e-3);
- the network is trained on **real** data between matching updates (``n_data`` real samples, one epoch, SGD with
  momentum), and is re-initialised at every outer iteration, which holds ``inner_loop`` matching updates.

One outer step (``--steps``) is one of the reference's outer iterations: a fresh network, then ``inner_loop`` times
(one update of every class's synthetic samples, then the network's epoch on ``n_data`` real samples). The reference
runs 2000 of them with ``inner_loop`` 100.

Departures: the network's real-data epochs use DSA but not CutMix (the reference mixes with probability 0.5); the
reference's ``tune_lr_img`` rescaling of the image learning rate is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.data import RealData
from distill_core.method import MethodConfig, Range, StepContext
from distill_core.modality import Modality
from distill_core.objectives import classwise_gradient_match
from distill_core.synset import Summary

from ..augment import DSA
from ..datasets import parse_spec
from ._base import VisionMethod

__all__ = ["IDC", "IDCConfig"]

#: datasets on which the reference matches with the L1 distance (and lr_img 1e-4) and drops cutout from the
#: matching augmentation of the digit sets
_L1_SETS = ("digits", "mnist", "fashion-mnist")
_DIGIT_SETS = ("digits", "mnist")


@dataclass
class IDCConfig(MethodConfig):
    """IDC hyper-parameters (reference defaults; ``None`` picks the reference's value for the dataset)."""

    steps: int = field(default=2000, metadata={"help": "outer iterations (n_iter), a fresh network each"})
    lr_summary: float | None = field(default=None, metadata={  # type: ignore[assignment]
        "help": "image learning rate (None: 1e-4 with the l1 metric, 5e-3 with mse)"})
    momentum: float = field(default=0.5, metadata={"help": "SGD momentum on the images (mom_img)"})
    param: str | None = field(default="idc", metadata={"help": "parameterization (idc: multi-formation)"})
    param_options: dict[str, Any] = field(default_factory=lambda: {"factor": 2}, metadata={
        "help": "multi-formation factor (1: IDC-I)"})
    model: str = field(default="convnet", metadata={"help": "network whose gradients are matched"})
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. {\"width\": 64}"})
    inner_loop: int = field(default=100, metadata={"help": "matching updates per outer iteration", "range": Range(1)})
    batch_real: int = field(default=64, metadata={"help": "real images per class and matching update"})
    batch_syn_max: int = field(default=128, metadata={"help": "decoded synthetic images per class and update, at most",
                                                      "range": Range(1)})
    n_data: int = field(default=500, metadata={"help": "real samples of the network's epoch after each update "
                                                       "(reference: 500 on MNIST/FMNIST, 2000 on CIFAR)",
                                               "range": Range(1)})
    batch_train: int = field(default=64, metadata={"help": "minibatch of the network's real-data epoch"})
    lr_net: float = field(default=0.01, metadata={"help": "SGD learning rate of the network"})
    momentum_net: float = field(default=0.9, metadata={"help": "SGD momentum of the network",
                                                                 "range": Range(0, 1, high_open=True)})
    weight_decay_net: float = field(default=5e-4, metadata={"help": "weight decay of the network",
                                                                     "range": Range(0)})
    metric: Literal["auto", "l1", "mse", "ours", "cos"] = field(default="auto", metadata={
        "help": "gradient distance (auto: l1 on MNIST/Fashion-MNIST, mse elsewhere)"})
    match_all: bool = field(default=False, metadata={"help": "also match norm, bias and classifier gradients"})
    dsa_strategy: str = field(default="auto", metadata={
        "help": "Siamese augmentation of the matching (auto: color_crop on digits/MNIST, color_crop_cutout else)"})


class IDC(VisionMethod[IDCConfig]):
    """IDC's gradient matching on multi-formation summaries (Kim et al., ICML 2022)."""

    paper = "https://arxiv.org/abs/2205.14959"
    min_classes = 2  # a cross-entropy over one class is constant: no gradient to learn from

    def prepare(self, data: RealData, *, modality: Modality, device: torch.device, progress: bool = True) -> None:
        cfg = self.config
        base = parse_spec(data.name)[0]
        if cfg.metric == "auto":
            cfg.metric = "l1" if base in _L1_SETS else "mse"
        if cfg.lr_summary is None:
            cfg.lr_summary = 1e-4 if cfg.metric == "l1" else 5e-3
        if cfg.dsa_strategy == "auto":
            cfg.dsa_strategy = "color_crop" if base in _DIGIT_SETS else "color_crop_cutout"

    def setup(self, summary: Summary, data: object, device: torch.device) -> None:
        self.dsa = DSA(self.config.dsa_strategy)

    def _matched(self, net: nn.Module) -> list[Tensor]:
        """The parameters whose gradients are matched: convolution weights (all with ``match_all``)."""
        params = [p for p in net.parameters() if p.requires_grad]
        return params if self.config.match_all else [p for p in params if p.dim() == 4]

    def matching_loss(self, net: nn.Module, summary: Summary, ctx: StepContext) -> Tensor:
        x_syn, targets = summary.x, summary.targets()

        def class_losses(c: int) -> tuple[Tensor, Tensor]:
            x_real = ctx.sample_real(c, self.config.batch_real)
            idx = torch.nonzero(summary.labels == c).flatten()
            if len(idx) > self.config.batch_syn_max:
                pick = torch.randperm(len(idx), generator=ctx.generator)[:self.config.batch_syn_max]
                idx = idx[pick.to(idx.device)]
            seed = ctx.new_seed()  # one draw for the real and the synthetic batch (Siamese)
            both = self.dsa(torch.cat([x_real, x_syn[idx]]), seed=seed)
            y_real = torch.full((len(x_real),), c, device=ctx.device)
            return (F.cross_entropy(net(both[:len(x_real)]), y_real),
                    F.cross_entropy(net(both[len(x_real):]), targets[idx]))

        return classwise_gradient_match(net, range(ctx.data.num_classes), class_losses,
                                        metric=self.config.metric,  # type: ignore[arg-type]
                                        params=self._matched(net))

    def train_on_real(self, net: nn.Module, ctx: StepContext, optimizer: torch.optim.Optimizer) -> None:
        """One epoch of ``n_data`` real samples (uniform, with per-sample DSA)."""
        x, y = ctx.sample_uniform(self.config.n_data)
        for start in range(0, len(x), self.config.batch_train):
            xb = self.dsa(x[start:start + self.config.batch_train], generator=ctx.generator)
            loss = F.cross_entropy(net(xb), y[start:start + self.config.batch_train])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        cfg = self.config
        net = ctx.fresh_model(cfg.model, **cfg.model_kwargs).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr_net, momentum=cfg.momentum_net,
                                    weight_decay=cfg.weight_decay_net)
        total = 0.0
        for _ in range(cfg.inner_loop):
            total += ctx.update(self.matching_loss(net, summary, ctx))
            self.train_on_real(net, ctx, optimizer)
        return total / max(1, cfg.inner_loop)
