"""KIP: Kernel Inducing Points (Nguyen, Chen & Lee, ICLR 2021, https://arxiv.org/abs/2011.00050; with ConvNet kernels:
Nguyen, Novak, Xiao & Lee, NeurIPS 2021, https://arxiv.org/abs/2107.13034).

The support set (images and centred one-hot labels ``one_hot - 1/C``) starts as a class-balanced random real sample.
Every step draws a class-balanced real target batch, predicts its labels by kernel ridge regression from the support set
with an infinite-width kernel (ridge ``1e-6 · trace(K_ss)/n``) and minimises ``0.5 · mean((pred - y_target)²)`` with
Adam over the support images (and labels with ``learn_labels``), as in the paper's reference notebooks
(google-research/kip). Kernels: the analytic NTK (default, ``depth`` 1, ``σ_w² = 2``, ``σ_b² = 0.01``) or NNGP of a
fully-connected ReLU network, RFAD's random-feature ConvNet NNGP (``conv_rf``, redrawn every step), the empirical NTK of
one fresh finite ConvNet (``conv_entk``), or the analytic infinite-width ConvNet NTK / NNGP (``cntk`` / ``cnngp``,
:mod:`distill_vision.cntk`; the paper's ConvNet kernels: conv3x3 -> ReLU -> 2x2 avg-pool blocks and a dense readout,
``σ_w² = 2``, ``σ_b² = 0.01``), whose cost is ``(H·W)²`` per image pair.

Under ``torch.distributed`` (``torchrun``) the real side is split in row blocks (``shards_targets``): every rank
draws the whole target batch's indices from the step's generator, computes ``K_ts`` and the squared errors of its
contiguous block of target rows (:meth:`~distill_core.method.StepContext.own_rows`) against the full support (``K_ss``
and its solve are computed by every rank), and the loss, a sum over target rows, has its gradient summed over the
ranks before the update. One process takes the unchanged path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

import torch
from torch import Tensor

from distill_core.distributed import world
from distill_core.evaluation_krr import one_hot_centred
from distill_core.kernels import fc_nngp, fc_ntk
from distill_core.kernels.empirical import jacobian_block
from distill_core.method import StepContext
from distill_core.objectives import krr_loss, krr_predict
from distill_core.objectives.krr import KernelFn, KernelRegressionConfig
from distill_core.synset import Summary

from ..cntk import CNTK
from ._base import VisionMethod
from .rfad import conv_rf_kernel

__all__ = ["KIP", "KIPConfig"]

KIPKernel = Literal["fc_ntk", "fc_nngp", "conv_rf", "conv_entk", "cntk", "cnngp"]


@dataclass
class KIPConfig(KernelRegressionConfig):
    """KIP hyper-parameters (reference: google-research kip/KIP.ipynb): Adam at lr 0.01 (the paper's for MNIST;
    0.04 for CIFAR-10) over the support set with centred one-hot regression labels, learned with ``learn_labels``
    (the notebook's LEARN_LABELS); 1,000 outer steps (the notebook's demo runs 300; ~1,000+ to converge), the FC
    kernel's ``W_std² = 2``, ``b_std² = 0.01`` and x64 solves."""

    defaults = {"steps": 1000, "lr_summary": 0.01}
    kernel: KIPKernel = field(default="fc_ntk", metadata={
        "help": "fc_ntk (analytic FC NTK), fc_nngp, conv_rf (random-feature ConvNet NNGP), conv_entk (empirical "
                "NTK of a freshly drawn ConvNet with one output, the finite-width stand-in for KIP's ConvNet NTK), "
                "cntk or cnngp (analytic infinite-width ConvNet NTK / NNGP, the paper's ConvNet kernels)"})
    depth: int = field(default=1, metadata={"help": "hidden ReLU layers of the FC kernel"})
    w_var: float = field(default=2.0, metadata={"help": "weight variance of the FC kernel (W_std² = 2)"})
    b_var: float = field(default=0.01, metadata={"help": "bias variance of the FC kernel (b_std² = 0.01)"})
    target_batch: int = field(default=5000, metadata={"help": "class-balanced real targets per step"})
    rf_models: int = field(default=8, metadata={"help": "conv_rf: random ConvNets per step"})
    rf_width: int = field(default=256, metadata={"help": "conv_rf / conv_entk: channels of the random ConvNets"})
    block_size: int = field(default=2048, metadata={"help": "kernel tile size (memory bound)"})
    conv_depth: int = field(default=3, metadata={"help": "cntk / cnngp: conv3x3 -> ReLU blocks (KIP's ConvNet: 3)"})
    conv_pool: bool = field(default=True, metadata={
        "help": "cntk / cnngp: 2x2 average pooling after every ReLU (KIP's and RFAD's ConvNet)"})
    conv_readout: Literal["gap", "flatten"] = field(default="flatten", metadata={
        "help": "cntk / cnngp: dense readout of the flattened map (KIP's ConvNet) or of its global average"})
    block_pairs: int | None = field(default=None, metadata={
        "help": "cntk / cnngp: image pairs per tile, each (H·W)² floats per tensor (None: 2^23 floats per tensor)"})
    conv_compile: bool = field(default=False, metadata={
        "help": "cntk / cnngp: torch.compile the element-wise work of layers >= 16x16 (~2.5x; compiles ~30 s)"})


class KIP(VisionMethod[KIPConfig]):
    """Kernel inducing points: KRR-loss distillation with an infinite-width kernel (Nguyen et al., ICLR 2021)."""

    paper = "https://arxiv.org/abs/2011.00050"
    shards_targets = True

    def kernel(self, ctx: StepContext) -> KernelFn:
        cfg = self.config
        if cfg.kernel == "fc_ntk":
            return lambda a, b: fc_ntk(a, b, depth=cfg.depth, w_var=cfg.w_var, b_var=cfg.b_var,
                                       block_size=cfg.block_size)
        if cfg.kernel == "fc_nngp":
            return lambda a, b: fc_nngp(a, b, depth=cfg.depth, w_var=cfg.w_var, b_var=cfg.b_var,
                                        block_size=cfg.block_size)
        if cfg.kernel == "conv_rf":
            rf = conv_rf_kernel(sample_shape=ctx.data.sample_shape, n_models=cfg.rf_models, width=cfg.rf_width,
                                device=ctx.device)
            rf.resample(ctx.generator)
            return rf
        if cfg.kernel in ("cntk", "cnngp"):
            conv = CNTK(depth=cfg.conv_depth, w_var=cfg.w_var, b_var=cfg.b_var, pool=cfg.conv_pool,
                        readout=cfg.conv_readout, block_pairs=cfg.block_pairs, compile=cfg.conv_compile)
            index = 1 if cfg.kernel == "cntk" else 0
            return lambda a, b: conv(a, b)[index]
        from distill_core.errors import UnknownNameError

        raise UnknownNameError("KIP kernel", cfg.kernel, get_args(KIPKernel))

    def kernel_matrices(self, ctx: StepContext, x_s: Tensor, x_t: Tensor) -> tuple[Tensor, Tensor]:
        """``(K_ss, K_ts)`` of this step's kernel: ``(n_s, n_s)`` and ``(n_t, n_s)``."""
        if self.config.kernel != "conv_entk":
            kernel = self.kernel(ctx)
            return kernel(x_s, x_s), kernel(x_t, x_s)
        # empirical NTK of one freshly drawn ConvNet with a scalar readout: K = J Jᵀ with per-sample parameter
        # Jacobians J. The support Jacobians carry the graph back to the images; the target Jacobians do not.
        net = ctx.modality.build_model("convnet", sample_shape=ctx.data.sample_shape, num_classes=1,
                                       width=self.config.rf_width).to(ctx.device).eval()
        params = {k: v.detach() for k, v in net.named_parameters()}
        j_s = jacobian_block(net, x_s, params)[:, 0]
        with torch.no_grad():
            j_t = torch.cat([jacobian_block(net, x_t[i:i + 64], params)[:, 0] for i in range(0, len(x_t), 64)])
        return j_s @ j_s.T, j_t @ j_s.T

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """0.5 MSE of the kernel ridge regression predictions of a class-balanced real target batch.

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        cfg = self.config
        num_classes = ctx.data.num_classes
        per_class = max(1, cfg.target_batch // num_classes)
        sharded = world()[1] > 1
        # every rank draws the whole batch (the same generator use as one process) and keeps its block of rows
        idx = ctx.class_index.sample_balanced(per_class, generator=ctx.generator)
        n_targets = len(idx)
        idx = ctx.own_rows(idx)
        x_t, y_t = ctx.data.x_train[idx].to(ctx.device), ctx.data.y_train[idx].to(ctx.device)
        x_s = summary.x
        targets = summary.targets() if cfg.learn_labels else summary.targets().detach()
        if summary.label_kind != "regression":
            targets = targets - 1.0 / num_classes
        k_ss, k_ts = self.kernel_matrices(ctx, x_s, x_t)
        y_t_centred = one_hot_centred(y_t, num_classes).to(k_ts.dtype)
        if not sharded:
            return krr_loss(k_ts, k_ss, targets, y_t_centred, reg=cfg.reg, float64=cfg.float64)
        # this block's share of 0.5 · mean over all (n_targets, C) entries: the ranks' shares sum to krr_loss
        pred = krr_predict(k_ts, k_ss, targets, reg=cfg.reg, float64=cfg.float64)
        return 0.5 * ((pred - y_t_centred.to(pred.dtype)) ** 2).sum() / (n_targets * num_classes)
