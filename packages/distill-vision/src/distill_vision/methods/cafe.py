"""CAFE: Learning to Condense Dataset by Aligning Features (Wang et al., CVPR 2022, https://arxiv.org/abs/2203.01531).

Every outer step draws a fresh network; real batches of every class and the whole synthetic set are passed through
it, and the images minimise

.. math::

    \\sum_l w_l \\sum_c \\lVert \\bar f^{T}_{l,c} - \\bar f^{S}_{l,c} \\rVert^2
    + \\sum_c \\lVert \\bar f^{T}_{L,c} - \\bar f^{S}_{L,c} \\rVert^2
    + \\beta \\sum_{i \\in T} \\mathrm{CE}\\big(f^{T}_{L,i} \\, (\\bar f^{S}_{L})^\\top,\\ y_i\\big)
    + \\mathrm{CE}_{\\text{net}}(T)

where :math:`\\bar f_{l,c}` is the mean over class ``c``'s samples of layer ``l``'s features (real ``T``, synthetic
``S``), the layers are the network's intermediate activations and its final feature (:func:`layer_features`;
ConvNet: each block's ReLU output and the flattened pooled map) weighted ``layer_weights`` from the deepest
(reference: 1, 1, 0.1, 0.1), ``L`` is the final feature, and the third term is the *discrimination loss*
(:func:`discrimination_loss`, ``inner_weight`` :math:`\\beta` = 0.01): every real sample is classified by the dot
products of its final feature with the synthetic class centres, summed cross-entropy. The last term is the
network's cross-entropy on the real batch, which the reference adds to the loss; it does not depend on the images.
The final feature is aligned twice (weight ``layer_weights[0]`` and the second term), as the reference aligns its
pooled map ``f4`` and the same values flattened, ``f5``.

**Dynamic bi-level optimisation.** Within an outer step the images are updated until the network's accuracy on real
data (``eval_real`` samples per class) has varied by less than ``lambda_1`` (0.04) over the last ``window`` (10)
updates; after every update that does not stop, the network trains on the synthetic set, epoch after epoch, until
its real accuracy has varied by *more* than ``lambda_2`` (0.03) over the last ``window`` epochs (the reference's
conditions, kaiwang960112/CAFE ``distill.py``). The image learning rate halves at 60/80/90% of the steps (the
reference: iterations 1200, 1600 and 1800 of 2000).

Departures from the reference: ``outer_loop`` / ``inner_loop`` cap the image updates per outer step and the network
epochs between them (the reference loops until its watchers fire, which for the inner loop may never happen); with
a cap of at most ``window`` a watcher cannot end its loop early and its real-accuracy evaluations are skipped. The
reference's evaluation pass over the synthetic set after each network epoch (it changes nothing) is not run. Class
means are taken per class, so any channel count, image size, number of classes, unequal real batch sizes and unequal
synthetic counts per class work (the reference reshapes to ``(10, n/10, 3, 32, 32)``). The watched accuracy is the
plain mean over classes (the reference's running value also keeps 1/C of the previous one). The real branch runs
without autograd (its terms carry no gradient to the images). The learning-rate milestones are fractions of
``steps``.

Shapes: ``summary.x`` is ``(n, C, H, W)``; each real batch ``(b_c, C, H, W)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.data import RealData
from distill_core.errors import DataValidationError
from distill_core.method import MethodConfig, Range, StepContext
from distill_core.modality import Modality
from distill_core.objectives import train_on_summary
from distill_core.synset import Summary

from ..augment import DSA
from ..modality import default_strategy
from ..models import _BasicBlock
from ._base import VisionMethod

__all__ = ["CAFE", "CAFEConfig", "class_means", "discrimination_loss", "layer_features"]

logger = logging.getLogger(__name__)


def layer_features(net: nn.Module, x: Tensor) -> tuple[list[Tensor], Tensor]:
    """The features CAFE aligns and the logits, in one forward pass of a ``features`` -> ``classifier`` model.

    The layers are the outputs of the ReLUs (and residual blocks) at the top level of ``net.features``, in order,
    then the final feature (``net.features``' output). For the ConvNet: each block's activation before pooling, then
    the flattened pooled map (the reference ConvNet's ``f1..f3`` and ``f5``).

    Returns:
        ``(layers, logits)``: the layers from the shallowest to the final feature, and ``net``'s output.

    Shapes:
        x: ``(n, C, H, W)``; each layer ``(n, ...)``, the last ``(n, embed_dim)``; logits ``(n, num_classes)``.
    """
    features = getattr(net, "features", None)
    if not isinstance(features, nn.Sequential) or not hasattr(net, "classifier"):
        raise DataValidationError(f"CAFE aligns the layers of a model with an nn.Sequential 'features' and a "
                                  f"'classifier' (convnet, mlp, lenet, resnet18); {type(net).__name__} has none")
    layers = []
    h = x
    for module in features:
        h = module(h)
        if isinstance(module, (nn.ReLU, _BasicBlock)):
            layers.append(h)
    return [*layers, h], net.classifier(h)


def class_means(feature: Tensor, labels: Tensor, classes: Sequence[int]) -> Tensor:
    """Mean feature of each class in ``classes`` (in that order).

    Shapes:
        feature: ``(n, *d)``; labels: ``(n,)``; returns ``(len(classes), *d)``.
    """
    return torch.stack([feature[labels == c].mean(0) for c in classes])


def discrimination_loss(real_final: Tensor, y_real: Tensor, syn_centres: Tensor) -> Tensor:
    """CAFE's discrimination loss: real samples classified by the dot products of their final features with the
    synthetic class centres, cross-entropy summed over the real samples (the reference's ``criterion_sum``).

    Shapes:
        real_final: ``(n, d)``; y_real: ``(n,)`` class indices into the rows of ``syn_centres`` ``(C, d)``; returns
        a 0-d tensor.
    """
    return F.cross_entropy(real_final @ syn_centres.t(), y_real, reduction="sum")


@dataclass(kw_only=True)
class CAFEConfig(MethodConfig):
    """CAFE hyper-parameters (reference defaults: 2000 iterations, lr_img 0.1, noise init, no DSA)."""

    steps: int = field(default=2000, metadata={"help": "outer iterations (Iteration), a fresh network each"})
    lr_summary: float = field(default=0.1, metadata={"help": "image learning rate (lr_img)"})
    momentum: float = field(default=0.5, metadata={"help": "SGD momentum on the images"})
    init: Literal["real", "noise", "herding", "kcenter"] = field(default="noise", metadata={
        "help": "initialise from noise (the reference's default), random real samples, or the samples the herding / "
                "k-center coreset picks"})
    model: str = field(default="convnet", metadata={"help": "network whose features are aligned"})
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. {\"width\": 64}"})
    batch_real: int = field(default=256, metadata={"help": "real images per class and image update"})
    batch_train: int = field(default=256, metadata={"help": "minibatch of the network's epochs on the summary"})
    lr_net: float = field(default=0.01, metadata={"help": "SGD learning rate of the network"})
    layer_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 0.1, 0.1], metadata={
        "help": "weights of the aligned layers from the deepest (final feature) to the shallowest (reference "
                "first..fourth_weight); layers beyond the list are not aligned", "range": Range(0)})
    inner_weight: float = field(default=0.01, metadata={"help": "weight of the discrimination loss",
                                                         "range": Range(0)})
    lambda_1: float = field(default=0.04, metadata={
        "help": "stop the image updates of a step when the real accuracy varied by less over the window",
        "range": Range(0)})
    lambda_2: float = field(default=0.03, metadata={
        "help": "stop the network's epochs when the real accuracy varied by more over the window", "range": Range(0)})
    window: int = field(default=10, metadata={"help": "updates / epochs the watchers look back", "range": Range(2)})
    outer_loop: int = field(default=100, metadata={"help": "most image updates per outer step", "range": Range(1)})
    inner_loop: int = field(default=100, metadata={"help": "most network epochs between image updates",
                                                   "range": Range(1)})
    eval_real: int = field(default=128, metadata={"help": "real images per class of the watchers' accuracy",
                                                  "range": Range(1)})
    lr_decay_at: list[float] = field(default_factory=lambda: [0.6, 0.8, 0.9], metadata={
        "help": "fractions of steps at which the image lr halves", "range": Range(0, 1)})
    dsa_strategy: str | None = field(default=None, metadata={
        "help": "Siamese augmentation strategy (None: off, the reference's default; 'auto': by dataset)"})


class CAFE(VisionMethod[CAFEConfig]):
    """Layer-wise feature alignment with a discrimination loss and dynamic bi-level loops (Wang et al., CVPR 2022)."""

    paper = "https://arxiv.org/abs/2203.01531"

    def prepare(self, data: RealData, *, modality: Modality, device: torch.device, progress: bool = True) -> None:
        cfg = self.config
        if not cfg.layer_weights:
            raise DataValidationError("CAFE option 'layer_weights' needs at least one weight (the final feature's); "
                                      "pass e.g. --set layer_weights='[1, 1, 0.1, 0.1]'")
        net = modality.build_model(cfg.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                                   **cfg.model_kwargs)
        with torch.no_grad():
            layers, _ = layer_features(net, data.x_train[:2])
        if len(layers) > len(cfg.layer_weights):
            logger.info("CAFE aligns the %d deepest of %s's %d layers (layer_weights has %d entries)",
                        len(cfg.layer_weights), cfg.model, len(layers), len(cfg.layer_weights))

    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:
        if self.config.dsa_strategy == "auto":
            self.config.dsa_strategy = default_strategy(data.name)
        self.dsa = DSA(self.config.dsa_strategy) if self.config.dsa_strategy else None

    # -- the loss -----------------------------------------------------------------------------------------------
    def _weights(self, n_layers: int) -> list[float]:
        """Weight of each layer, shallowest first (``layer_weights`` counts from the deepest)."""
        deepest_first = [*self.config.layer_weights[:n_layers],
                         *[0.0] * max(0, n_layers - len(self.config.layer_weights))]
        return deepest_first[::-1]

    def outer_loss(self, summary: Summary, ctx: StepContext, net: nn.Module | None = None) -> Tensor:
        """CAFE's loss of one image update with ``net`` (a fresh one when ``None``).

        Shapes:
            summary.x: ``(n, C, H, W)`` (with gradient); returns the 0-d loss.
        """
        net = ctx.fresh_model(self.config.model, **self.config.model_kwargs) if net is None else net
        classes = list(range(ctx.data.num_classes))
        x_real, y_real, x_syn, y_syn = [], [], [], []
        for c in classes:
            real = ctx.sample_real(c, self.config.batch_real)
            syn = summary.x[summary.class_mask(c)]
            if self.dsa is not None:
                seed = ctx.new_seed()  # one Siamese draw for the class's real batch and its synthetic images
                real, syn = self.dsa(real, seed=seed), self.dsa(syn, seed=seed)
            x_real.append(real)
            y_real.append(torch.full((len(real),), c, device=real.device))
            x_syn.append(syn)
            y_syn.append(torch.full((len(syn),), c, device=syn.device))
        labels_real, labels_syn = torch.cat(y_real), torch.cat(y_syn)
        with torch.no_grad():  # nothing on the real side depends on the images
            real_layers, real_logits = layer_features(net, torch.cat(x_real))
            real_means = [class_means(f, labels_real, classes) for f in real_layers]
        syn_layers, _ = layer_features(net, torch.cat(x_syn))
        syn_means = [class_means(f, labels_syn, classes) for f in syn_layers]
        weights = self._weights(len(real_layers))
        middle = sum(w * ((r - s) ** 2).sum() for w, r, s in zip(weights, real_means, syn_means) if w)
        final = ((real_means[-1] - syn_means[-1]) ** 2).sum()
        discrimination = discrimination_loss(real_layers[-1], labels_real, syn_means[-1])
        net_ce = F.cross_entropy(real_logits, labels_real)
        return middle + final + self.config.inner_weight * discrimination + net_ce  # type: ignore[return-value]

    # -- the dynamic loops --------------------------------------------------------------------------------------
    @torch.no_grad()
    def real_accuracy(self, net: nn.Module, ctx: StepContext) -> float:
        """The network's accuracy on ``eval_real`` fresh real images per class, averaged over classes."""
        accs = []
        for c in range(ctx.data.num_classes):
            x = ctx.sample_real(c, self.config.eval_real)
            accs.append(float((net(x).argmax(-1) == c).float().mean()))
        return sum(accs) / len(accs)

    def train_inner(self, net: nn.Module, summary: Summary, ctx: StepContext, optimizer: torch.optim.Optimizer) -> int:
        """Epochs of the network on the synthetic set until the λ2 watcher fires or ``inner_loop`` is reached;
        returns the number of epochs."""
        cfg = self.config
        x_syn, targets = summary.materialize()
        augment = None if self.dsa is None else (lambda xb: self.dsa(xb, generator=ctx.generator))  # type: ignore[misc]
        watch: list[float] = []
        for epoch in range(cfg.inner_loop):
            train_on_summary(net, x_syn, targets, epochs=1, batch_size=cfg.batch_train, optimizer=optimizer,
                             generator=ctx.generator, augment=augment)
            if cfg.inner_loop <= cfg.window or epoch == cfg.inner_loop - 1:
                continue  # the watcher cannot stop the loop earlier than the cap
            watch = [*watch, self.real_accuracy(net, ctx)][-cfg.window:]
            if len(watch) == cfg.window and max(watch) - min(watch) > cfg.lambda_2:
                return epoch + 1
        return cfg.inner_loop

    def _image_lr(self, summary: Summary, ctx: StepContext) -> None:
        """Halve the image learning rate at each passed milestone (fractions of ``steps``)."""
        factor = 0.5 ** sum(ctx.step >= math.ceil(f * self.config.steps) for f in self.config.lr_decay_at)
        for group, base in zip(ctx.optimizer.param_groups, self.param_groups(summary)):
            group["lr"] = base["lr"] * factor

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        cfg = self.config
        self._image_lr(summary, ctx)
        net = ctx.fresh_model(cfg.model, **cfg.model_kwargs).train()
        optimizer = torch.optim.SGD(net.parameters(), lr=cfg.lr_net)
        total, updates, epochs = 0.0, 0, 0
        watch: list[float] = []
        for update in range(cfg.outer_loop):
            total += ctx.update(self.outer_loss(summary, ctx, net))
            updates += 1
            if update == cfg.outer_loop - 1:
                break
            if cfg.outer_loop > cfg.window:  # else the watcher cannot stop the loop before the cap
                watch = [*watch, self.real_accuracy(net, ctx)][-cfg.window:]
                if len(watch) == cfg.window and max(watch) - min(watch) < cfg.lambda_1:
                    break
            epochs += self.train_inner(net, summary, ctx, optimizer)
        logger.debug("CAFE step %d: %d image updates, %d network epochs", ctx.step, updates, epochs)
        return total / updates
