"""Trajectory matching as a method, for any modality whose models are plain classifiers: MTT (Cazenavette et al.,
CVPR 2022, https://arxiv.org/abs/2203.11932), TESLA (Cui et al., ICML 2023, https://arxiv.org/abs/2211.10586) and
DATM (Guo et al., ICLR 2024, https://arxiv.org/abs/2310.05773) are configurations of :class:`TrajectoryMatching`.

One outer step: pick an expert ``k`` and a start epoch ``t`` in the current window, start a student at ``θ*_t`` of
expert ``k``, take ``syn_steps`` SGD steps on summary mini-batches (``batch_syn``) with the learned positive inner
learning rate and the modality's augmentation, and move the samples (and the learning rate, and soft labels when
learned) down the gradient of ``‖θ_N − θ*_{t+M}‖² / ‖θ*_t − θ*_{t+M}‖²`` (:mod:`distill_core.objectives.trajectory`).

The experts come from an :class:`~distill_core.experts.ExpertStore` keyed by the dataset and the expert protocol;
:meth:`TrajectoryMatching.prepare` builds what is missing before the loop (``build_experts=False`` refuses instead).

Options and where their defaults come from (MTT's ``distill.py`` / ``buffer.py``; TESLA and DATM change few):
``lr_summary`` = ``lr_img`` (1000), momentum 0.5, ``lr_init`` = ``lr_teacher`` (0.01), ``lr_lr`` (1e-5),
``syn_steps`` (20), ``expert_epochs`` M (MTT code 3; its per-setting table and DATM: 2), ``max_start_epoch`` (20;
MTT code 25), ``batch_syn`` (all), experts: SGD lr 0.01, no momentum, no weight decay, batch 256, the modality's
augmentation (DSA for images), 100 experts in the papers (10 here by default: each costs epochs of full-data
training). The evaluation trains with the learned learning rate, the soft labels the summary carries and the same
augmentation and architecture as the experts; the stored protocol says so.

Departures: DATM's exponential moving average of the images (``ema_decay``) is not kept, and DATM's experts come
from FTD's sharpness-aware training; here every method uses the plain-SGD experts of one store, so the three
methods are compared on the same trajectories.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from .coreset import initial_indices
from .data import Budget, RealData
from .errors import DataValidationError
from .experts import ExpertProtocol, ExpertStore, build_experts, open_store
from .method import Method, MethodConfig, Range, StepContext
from .objectives.trajectory import Augment, plan_steps, trajectory_backward, trajectory_loss
from .protocol import EvalProtocol
from .synset import Summary

if TYPE_CHECKING:
    from .modality import Modality

__all__ = ["TrajectoryConfig", "TrajectoryMatching"]

logger = logging.getLogger(__name__)

_COUNT = Range(1)
_NONNEG = Range(0)
_POS = Range(0, low_open=True)


@dataclass
class TrajectoryConfig(MethodConfig):
    """Trajectory-matching options (MTT defaults; TESLA and DATM override a few)."""

    steps: int = field(default=5000, metadata={"help": "outer iterations (Iteration)"})
    lr_summary: float = field(default=1000.0, metadata={"help": "learning rate of the samples (lr_img)"})
    momentum: float = field(default=0.5, metadata={"help": "SGD momentum of samples, labels and learning rate"})
    learn_lr: bool = field(default=True, metadata={"help": "learn the positive inner learning rate (syn_lr)"})
    lr_init: float = field(default=0.01, metadata={"help": "initial inner learning rate (lr_teacher)"})
    lr_lr: float = field(default=1e-5, metadata={"help": "learning rate of the inner learning rate (lr_lr)"})
    init: Literal["real", "noise", "correct", "herding", "kcenter"] = field(default="real", metadata={
        "help": "initial samples: random real, noise, real ones an expert classifies correctly (DATM), or the "
                "herding / k-center coreset's"})
    model: str = field(default="convnet", metadata={"help": "student and expert architecture"})
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. {\"width\": 32}"})
    syn_steps: int = field(default=20, metadata={"help": "student SGD steps N per outer step",
                                                 "range": _COUNT})
    expert_epochs: int = field(default=2, metadata={"help": "target epoch offset M", "range": _COUNT})
    min_start_epoch: int = field(default=0, metadata={"help": "lowest start epoch", "range": _NONNEG})
    max_start_epoch: int = field(default=20, metadata={"help": "start epochs are drawn below this (exclusive)",
                                                       "range": _COUNT})
    initial_max_start_epoch: int | None = field(default=None, metadata={
        "help": "DATM: the window's upper end starts here and grows linearly to max_start_epoch over "
                "expansion_steps outer steps (None: a fixed window)", "range": _COUNT})
    expansion_steps: int = field(default=0, metadata={"help": "DATM: outer steps over which the window grows",
                                                      "range": _NONNEG})
    batch_syn: int | None = field(default=None, metadata={"help": "summary samples per student step (None: all)",
                                                          "range": _COUNT})
    gradient: Literal["unrolled", "exact", "paper"] = field(default="unrolled", metadata={
        "help": "meta-gradient: unrolled autograd (memory grows with syn_steps), exact per-step recomputation "
                "(flat memory), or TESLA's Eq. 6 approximation"})
    soft_labels: bool = field(default=False, metadata={
        "help": "learn soft labels initialised from the experts' logits (TESLA, DATM)"})
    lr_labels: float = field(default=0.0, metadata={"help": "learning rate of the soft labels' logits (DATM lr_y)"})
    threshold: float | None = field(default=None, metadata={
        "help": "DATM: skip the update when the matching loss is above this (None: always update)", "range": _POS})
    augment: str | None = field(default="auto", metadata={
        "help": "augmentation of the student's batches ('auto': the modality's default, e.g. DSA; None: off)"})
    experts: str | None = field(default=None, metadata={
        "help": "expert-store folder (None: the user cache, keyed by dataset and expert protocol)"})
    n_experts: int = field(default=10, metadata={"help": "experts used (papers: 100)", "range": _COUNT})
    expert_lr: float = field(default=0.01, metadata={"help": "expert SGD learning rate", "range": _POS})
    expert_batch: int = field(default=256, metadata={"help": "expert minibatch size", "range": _COUNT})
    expert_momentum: float = field(default=0.0, metadata={"help": "expert SGD momentum",
                                                          "range": Range(0, 1, high_open=True)})
    expert_weight_decay: float = field(default=0.0, metadata={"help": "expert weight decay", "range": _NONNEG})
    expert_augment: str | None = field(default="auto", metadata={
        "help": "augmentation of the experts' batches ('auto': as `augment`)"})
    expert_seed: int = field(default=0, metadata={"help": "seeds the experts", "range": _NONNEG})
    expert_workers: int = field(default=1, metadata={"help": "processes training missing experts", "range": _COUNT})
    build_experts: bool = field(default=True, metadata={
        "help": "train missing experts before distilling (False: refuse when the store lacks them)"})


class TrajectoryMatching(Method[TrajectoryConfig]):
    """Matching training trajectories of experts (MTT and its successors; see the module docstring)."""

    paper = "https://arxiv.org/abs/2203.11932"
    min_classes = 2  # the student's cross-entropy over one class is constant: it would not move

    def __init__(self, *, config: TrajectoryConfig | None = None) -> None:
        super().__init__(config=config)
        self.store: ExpertStore | None = None
        self.expert_ids: list[int] = []
        self.augment_name: str | None = None
        self._augment: Augment | None = None
        self._student: torch.nn.Module | None = None

    # -- what a modality package supplies ------------------------------------------------------------------------
    def default_augment(self, data: RealData) -> str | None:
        """The augmentation name ``"auto"`` stands for (a modality package's subclass sets it, e.g. DSA)."""
        return None

    # -- experts --------------------------------------------------------------------------------------------------
    def _resolve(self, name: str | None, data: RealData) -> str | None:
        return self.default_augment(data) if name == "auto" else name

    def expert_protocol(self, data: RealData) -> ExpertProtocol:
        cfg = self.config
        augment = self._resolve(cfg.augment, data) if cfg.expert_augment == "auto" else cfg.expert_augment
        return ExpertProtocol(model=cfg.model, model_kwargs=dict(cfg.model_kwargs), lr=cfg.expert_lr,
                              momentum=cfg.expert_momentum, weight_decay=cfg.expert_weight_decay,
                              batch_size=cfg.expert_batch, augment=augment, seed=cfg.expert_seed)

    @property
    def epochs_needed(self) -> int:
        """Expert epochs a run samples: start epochs below ``max_start_epoch`` plus ``expert_epochs``."""
        return self.config.max_start_epoch - 1 + self.config.expert_epochs

    def check_options(self, data: RealData) -> None:
        cfg = self.config
        if cfg.min_start_epoch >= cfg.max_start_epoch:
            raise DataValidationError(f"min_start_epoch ({cfg.min_start_epoch}) must be below max_start_epoch "
                                      f"({cfg.max_start_epoch}); start epochs are drawn from [min, max)")
        if cfg.initial_max_start_epoch is not None and not (
                cfg.min_start_epoch < cfg.initial_max_start_epoch <= cfg.max_start_epoch):
            raise DataValidationError(f"initial_max_start_epoch ({cfg.initial_max_start_epoch}) must lie in "
                                      f"(min_start_epoch, max_start_epoch] = ({cfg.min_start_epoch}, "
                                      f"{cfg.max_start_epoch}]")
        expert_steps = cfg.expert_epochs * math.ceil(len(data.y_train) / cfg.expert_batch)
        if cfg.syn_steps > expert_steps:
            raise DataValidationError(
                f"syn_steps={cfg.syn_steps} is larger than the {expert_steps} SGD steps the expert takes over "
                f"expert_epochs={cfg.expert_epochs} epoch(s) of {len(data.y_train)} samples in batches of "
                f"{cfg.expert_batch}: the student would outrun the trajectory; lower syn_steps or raise expert_epochs")

    def prepare(self, data: RealData, *, modality: Modality, device: torch.device, progress: bool = True) -> None:
        """Open the expert store and build the experts and epochs the run can sample (unless ``build_experts`` is
        off, then a store that lacks them is refused)."""
        cfg = self.config
        self.check_options(data)
        protocol = self.expert_protocol(data)
        student = modality.build_model(cfg.model, sample_shape=data.sample_shape, num_classes=data.num_classes,
                                       **cfg.model_kwargs)
        buffers = [name for name, _ in student.named_buffers()]
        if buffers:
            raise DataValidationError(
                f"trajectory matching needs a student without running statistics, but {cfg.model!r} has buffers "
                f"{buffers[:3]}; use instance or group normalisation (e.g. the default convnet)")
        self._student = student.to(device)
        self.store = open_store(cfg.experts, data=data, modality=modality, protocol=protocol)
        need = self.epochs_needed
        if len(self.store.usable(need)) < cfg.n_experts:
            if not cfg.build_experts:
                have = {k: self.store.epochs_of(k) for k in self.store.experts()}
                raise DataValidationError(
                    f"the expert store {self.store.root} has {len(self.store.usable(need))} expert(s) with the "
                    f"{need} epochs this run needs (max_start_epoch {cfg.max_start_epoch} - 1 + expert_epochs "
                    f"{cfg.expert_epochs}); it holds {have or 'none'}. Build them with `distill experts --dataset "
                    f"{data.name} --n {cfg.n_experts} --epochs {need}` or set build_experts=true")
            build_experts(self.store, n=cfg.n_experts, epochs=need, data=data, modality=modality,
                          workers=cfg.expert_workers, device=device, progress=progress)
        self.expert_ids = self.store.usable(need)[:cfg.n_experts]
        self.augment_name = self._resolve(cfg.augment, data)
        self._augment = modality.augmenter(self.augment_name)

    def _require_prepared(self) -> tuple[ExpertStore, torch.nn.Module]:
        if self.store is None or self._student is None:
            raise RuntimeError(f"{type(self).__name__}.prepare() must run before the summary is built or distilled "
                               "(distill_core.runner.distill does this)")
        return self.store, self._student

    @torch.no_grad()
    def expert_logits(self, x: Tensor, *, epoch: int | None = None, n: int = 3) -> Tensor:
        """Mean logits of up to ``n`` experts at ``epoch`` (default: the last epoch all of them have in the store,
        their most trained state, which is at least the last epoch the run samples)."""
        store, student = self._require_prepared()
        if epoch is None:
            epoch = min(store.epochs_of(k) for k in self.expert_ids[:n])
        device = next(iter(student.parameters())).device
        outs = []
        for k in self.expert_ids[:n]:
            params = {name: p.to(device) for name, p in store.load(k, epoch).items()}
            chunks = [torch.func.functional_call(student, params, (x[i:i + 512].to(device),))
                      for i in range(0, len(x), 512)]
            outs.append(torch.cat(chunks))
        return torch.stack(outs).mean(0)

    # -- summary --------------------------------------------------------------------------------------------------
    def init_summary(self, data: RealData, *, budget: Budget, modality: Modality,
                     generator: torch.Generator) -> Summary:
        cfg = self.config
        sizes = budget.per_class(data)
        if cfg.init == "correct":  # DATM: real samples the experts classify correctly
            pred = self.expert_logits(data.x_train).argmax(-1).cpu()
            right = pred == data.y_train
            chosen = []
            for c, size in enumerate(sizes):
                pool = torch.nonzero((data.y_train == c) & right).flatten()
                if len(pool) < size:
                    pool = torch.nonzero(data.y_train == c).flatten()
                chosen.append(pool[torch.randperm(len(pool), generator=generator)[:size]])
            indices = torch.cat(chosen)
        else:
            indices = initial_indices(cfg.init, data, sizes, modality=modality, generator=generator)
        summary = self.make_summary(data, indices, sizes=sizes, modality=modality, generator=generator,
                                    label_kind="soft" if cfg.soft_labels else cfg.label_kind)
        if cfg.soft_labels:  # the experts' logits of the (decoded) samples
            assert summary.label_values is not None
            summary.label_values.data.copy_(self.expert_logits(summary.x.detach()).cpu())
        return summary

    def eval_protocol(self, protocol: EvalProtocol, summary: Summary) -> EvalProtocol:
        """Train with the learned learning rate, the summary's (soft) labels, the experts' architecture and the
        distillation's augmentation (MTT's ``evaluate_synset``)."""
        return protocol.with_(use_learned_lr=True, model=self.config.model, model_kwargs=dict(self.config.model_kwargs),
                              augment=self.augment_name)

    # -- the step -------------------------------------------------------------------------------------------------
    def window(self, step: int) -> tuple[int, int]:
        """``[low, high)`` of the start epochs at outer step ``step`` (DATM's window grows linearly)."""
        cfg = self.config
        high = cfg.max_start_epoch
        if cfg.initial_max_start_epoch is not None:
            frac = 1.0 if cfg.expansion_steps <= 0 else min(1.0, step / cfg.expansion_steps)
            high = int(cfg.initial_max_start_epoch + frac * (cfg.max_start_epoch - cfg.initial_max_start_epoch))
        return cfg.min_start_epoch, max(high, cfg.min_start_epoch + 1)

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        cfg = self.config
        store, student = self._require_prepared()
        k = self.expert_ids[int(torch.randint(len(self.expert_ids), (1,), generator=ctx.generator))]
        low, high = self.window(ctx.step)
        t = int(torch.randint(low, high, (1,), generator=ctx.generator))
        start = {n: p.to(ctx.device) for n, p in store.load(k, t).items()}
        target = {n: p.to(ctx.device) for n, p in store.load(k, t + cfg.expert_epochs).items()}
        plan = plan_steps(summary.budget, cfg.syn_steps, cfg.batch_syn, ctx.generator)
        lr: Tensor | float = summary.lr if summary.lr is not None else cfg.lr_init
        if cfg.gradient == "unrolled":
            loss = trajectory_loss(student, start, target, summary.x, summary.targets(), lr=lr, plan=plan,
                                   augment=self._augment)
            if cfg.threshold is not None and float(loss.detach()) > cfg.threshold:
                return float(loss)
            return ctx.update(loss)
        for p in summary.parameters():
            p.grad = None
        value = trajectory_backward(student, start, target, summary.x, summary.targets(), lr=lr, plan=plan,
                                    augment=self._augment, mode=cfg.gradient)
        grads = {p: p.grad for p in summary.parameters()}
        if cfg.threshold is not None and value > cfg.threshold:
            return value

        def restore() -> None:
            for p, g in grads.items():
                p.grad = g

        return ctx.update(value, backward=restore)

    def extra_metadata(self) -> dict[str, Any]:
        if self.store is None:
            return {}
        return {"experts": {"root": str(self.store.root), "protocol": self.store.protocol.to_dict(),
                            "used": self.expert_ids, "epochs_needed": self.epochs_needed,
                            "bytes_per_epoch": self.store.bytes_per_epoch()}}
