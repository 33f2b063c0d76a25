"""Dataset Condensation with Gradient Matching (DC: Zhao, Mopuri & Bilen, ICLR 2021,
https://arxiv.org/abs/2006.05929).

Algorithm 1 of the paper, with the reference implementation's settings (../shared/HYPERPARAMS.md section 1):
every outer iteration draws a freshly initialised network; then ``outer_loop`` times: for every class, the
layer-wise cosine distance between the gradient of the loss on a real batch of the class (detached) and on the
class's synthetic images is summed over classes and minimised by one SGD step on the images; between those steps
the network is trained for ``inner_loop`` epochs on the current synthetic set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.method import Method, MethodConfig, StepContext
from distill_core.objectives import gradient_match_distance
from distill_core.synset import Summary

from ..augment import DSA
from ..models import check_architecture_defaults

__all__ = ["DC", "DCConfig", "loop_schedule"]

logger = logging.getLogger(__name__)

#: (outer_loop, inner_loop) per IPC from the reference implementation (utils.py get_loops)
_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def loop_schedule(ipc: int) -> tuple[int, int]:
    """``(outer_loop, inner_loop)`` of the reference for ``ipc``; other IPCs take the nearest tabulated one."""
    nearest = min(_LOOPS, key=lambda k: (abs(k - ipc), k))
    if nearest != ipc:
        logger.info("ipc %d is not in the reference schedule; using the loops of ipc %d: %s", ipc, nearest,
                    _LOOPS[nearest])
    return _LOOPS[nearest]


@dataclass
class DCConfig(MethodConfig):
    """DC hyper-parameters (reference defaults). ``init`` is "real" as in the DSA readme's commands (the DC code
    default is "noise"; pass ``--set init=noise`` to follow it)."""

    steps: int = field(default=1000, metadata={"help": "outer iterations (Iteration)"})
    lr_summary: float = field(default=0.1, metadata={"help": "image learning rate (lr_img; 0.01 for MLP)"})
    momentum: float = field(default=0.5, metadata={"help": "SGD momentum on the images"})
    model: str = field(default="convnet", metadata={"help": "network whose gradients are matched"})
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. {\"width\": 64}"})
    batch_real: int = field(default=256, metadata={"help": "real images per class and matching step"})
    batch_train: int = field(default=256, metadata={"help": "minibatch of the inner network updates"})
    lr_net: float = field(default=0.01, metadata={"help": "SGD learning rate of the inner network updates"})
    outer_loop: int = field(default=0, metadata={"help": "matching steps per iteration (0: reference table)"})
    inner_loop: int = field(default=0, metadata={"help": "inner epochs between matching steps (0: table)"})
    metric: Literal["ours", "mse", "cos"] = field(default="ours", metadata={"help": "gradient distance"})
    dsa_strategy: str | None = field(default=None, metadata={"help": "Siamese augmentation (None: DC)"})


class DC(Method[DCConfig]):
    """Gradient matching (Zhao et al., ICLR 2021)."""

    modality = "vision"
    config_class = DCConfig
    paper = "https://arxiv.org/abs/2006.05929"

    def setup(self, summary: Summary, data: object, device: torch.device) -> None:
        check_architecture_defaults(self.config.model, lr_images=self.config.lr_summary)
        table_outer, table_inner = loop_schedule(summary.ipc)
        self.outer_loop = self.config.outer_loop or table_outer
        self.inner_loop = self.config.inner_loop or table_inner
        self.dsa = DSA(self.config.dsa_strategy) if self.config.dsa_strategy else None

    def _augment(self, x: Tensor, seed: int) -> Tensor:
        return x if self.dsa is None else self.dsa(x, seed=seed)

    def matching_loss(self, net: nn.Module, summary: Summary, ctx: StepContext) -> Tensor:
        """Sum over classes of the gradient distance between a real batch and the class's synthetic images."""
        params = [p for p in net.parameters() if p.requires_grad]
        loss = summary.x.new_zeros(())
        for c in range(ctx.data.num_classes):
            mask = summary.class_mask(c)
            seed = ctx.new_seed()
            x_real = self._augment(ctx.sample_real(c, self.config.batch_real), seed)
            y_real = torch.full((len(x_real),), c, device=ctx.device)
            g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
            g_real = [g.detach() for g in g_real]
            x_syn = self._augment(summary.x[mask], seed)
            logits = net(x_syn)
            targets = summary.targets()[mask]
            syn_loss = -(targets * F.log_softmax(logits, -1)).sum(-1).mean()
            g_syn = torch.autograd.grad(syn_loss, params, create_graph=True)
            loss = loss + gradient_match_distance(g_real, g_syn, metric=self.config.metric)
        return loss

    def train_inner(self, net: nn.Module, summary: Summary, ctx: StepContext, optimizer: torch.optim.Optimizer) -> None:
        """``inner_loop`` epochs of SGD on the current synthetic set (non-Siamese DSA when enabled)."""
        x_syn, targets = (t.detach() for t in summary.materialize())
        for _ in range(self.inner_loop):
            order = torch.randperm(len(x_syn), generator=ctx.generator).to(ctx.device)
            for start in range(0, len(x_syn), self.config.batch_train):
                idx = order[start:start + self.config.batch_train]
                xb = x_syn[idx] if self.dsa is None else self.dsa(x_syn[idx], generator=ctx.generator)
                loss = -(targets[idx] * F.log_softmax(net(xb), -1)).sum(-1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        net = ctx.fresh_model(self.config.model, **self.config.model_kwargs).train()
        net_opt = torch.optim.SGD(net.parameters(), lr=self.config.lr_net)
        total = 0.0
        for ol in range(self.outer_loop):
            total += ctx.update(self.matching_loss(net, summary, ctx))
            if ol == self.outer_loop - 1:
                break
            self.train_inner(net, summary, ctx, net_opt)
        return total / self.outer_loop
