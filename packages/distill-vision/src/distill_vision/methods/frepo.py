"""FRePO: dataset distillation with neural feature regression and a model pool (Zhou, Nezhadarya & Ba,
NeurIPS 2022, https://arxiv.org/abs/2206.00719).

A pool of ``num_models`` networks is trained *online on the summary*. Every outer step takes the current pool
member, embeds a real target batch (no gradient) and the summary images (with gradient) with its feature extractor
(the flattened input of the final dense layer), predicts the targets' centred one-hot labels by kernel ridge
regression with the linear kernel on those features (ridge ``1e-6 · trace(K)/n``), and minimises the squared error
plus a label-margin regulariser w.r.t. the images and the learned soft labels. The margin is the reference's
(``lb_margin_th``): the gap between the two largest entries of each learned label vector, capped at ``1/C``,
whichever classes they belong to. The loss is the reference's divided by ``C``: its squared error is summed over
classes (``mean_squared_loss``), the core's ``krr_loss`` averages over them, so the margin enters with weight
``1/C`` (the same balance; Adam does not see the common factor).
Then the member takes one Adam step (MSE on the learned labels) on the summary, or is re-initialised once it has
done ``max_online_updates`` steps; finally a random member becomes current (yongchao97/FRePO). The pool (weights,
optimiser states, step counts, current member) is the method state saved in checkpoints, so resumed runs are exact.

Deviations: Adam replaces LAMB for the summary (no LAMB in torch) and its cosine decay is not applied; the pool uses
the library's ConvNet (constant width, instance norm by default) instead of FRePO's widening BatchNorm ConvNet.
``label_margin_kind="true_class"`` keeps the margin this module used before (the labelled class against the largest
other entry), which pulls a label whose largest entry has drifted to another class back to its own class.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from distill_core.data import RealData
from distill_core.errors import DataValidationError
from distill_core.evaluation_krr import one_hot_centred
from distill_core.method import StepContext
from distill_core.objectives import krr_loss
from distill_core.objectives.krr import KernelRegressionConfig
from distill_core.synset import Summary

from ..models import build_model
from ._base import VisionMethod

__all__ = ["FRePO", "FRePOConfig", "label_margin_loss"]


@dataclass
class FRePOConfig(KernelRegressionConfig):
    """FRePO hyper-parameters (reference: yongchao97/FRePo script/distill.py and lib/datadistillation/frepo.py):
    500,000 outer steps (the README's num_train_steps), one learning rate 3e-4 for images and labels with Adam
    (the reference uses LAMB), learned centred one-hot regression labels (learn_label)."""

    defaults = {"steps": 500_000, "lr_summary": 3e-4, "learn_labels": True}
    model: str = field(default="convnet", metadata={"help": "pool architecture (a model with .embed)"})
    model_kwargs: dict[str, Any] = field(default_factory=dict, metadata={"help": "pool architecture options"})
    num_models: int = field(default=10, metadata={"help": "pool size (num_nn_state)"})
    max_online_updates: int = field(default=100, metadata={"help": "online steps before a member is re-initialised"})
    lr_model: float = field(default=3e-4, metadata={"help": "Adam learning rate of the online pool updates"})
    online_batch: int = field(default=1000, metadata={"help": "summary samples per online update (all if fewer)"})
    target_batch: int = field(default=1024, metadata={"help": "real target images per step"})
    label_margin: bool = field(default=True, metadata={"help": "add the label-margin regulariser"})
    label_margin_kind: Literal["top2", "true_class"] = field(default="top2", metadata={
        "help": "margin of a learned label: 'top2': its largest minus its second-largest entry (reference: "
                "lb_margin_th); 'true_class': the labelled class's entry minus the largest other one"})
    use_flip: bool = field(default=False, metadata={"help": "append h-flipped images to the KRR support "
                                                              "(reference: False on MNIST/FMNIST)"})


def label_margin_loss(label_values: Tensor, labels: Tensor | None = None, *,
                      kind: Literal["top2", "true_class"] = "top2") -> Tensor:
    """FRePO's label regulariser ``mean(-min(margin, 1/C))``: no gradient once a label's margin reaches ``1/C``.

    Args:
        label_values: the learned labels ``(n, C)``.
        labels: the classes of the samples ``(n,)`` (needed by ``kind="true_class"`` only).
        kind: ``"top2"``: the margin is the largest entry minus the second largest, whichever classes they belong to
            (the reference's ``lb_margin_th``: it keeps every label decisive, not necessarily right);
            ``"true_class"``: the labelled class's entry minus the largest other entry (negative when another class
            leads, so it also pulls the label back to its own class).

    Shapes:
        label_values: ``(n, C)``; labels: ``(n,)``; returns a scalar.
    """
    num_classes = label_values.shape[1]
    if kind == "top2":
        top = label_values.topk(2, dim=1).values
        margin = top[:, 0] - top[:, 1]
    elif kind == "true_class":
        if labels is None:
            raise DataValidationError("label_margin_loss(kind='true_class') needs the sample classes")
        true = label_values.gather(1, labels[:, None])[:, 0]
        others = label_values.masked_fill(nn.functional.one_hot(labels, num_classes).bool(), float("-inf"))
        margin = true - others.max(1).values
    else:
        raise DataValidationError(f"unknown label margin {kind!r}; use 'top2' or 'true_class'")
    return -(margin.clamp(max=1.0 / num_classes)).mean()


class FRePO(VisionMethod[FRePOConfig]):
    """Neural feature regression with an online model pool (Zhou et al., NeurIPS 2022)."""

    paper = "https://arxiv.org/abs/2206.00719"

    def __init__(self, *, config: FRePOConfig | None = None) -> None:
        super().__init__(config=config)
        self.pool: list[nn.Module] | None = None
        self.optimizers: list[torch.optim.Optimizer] = []
        self.counts: list[int] = []
        self.current = 0
        self._shape: tuple[tuple[int, ...], int] | None = None
        self._device = torch.device("cpu")

    def init_summary(self, data: RealData, **kwargs: Any) -> Summary:  # type: ignore[override]
        summary = super().init_summary(data, **kwargs)
        if summary.label_values is not None:  # reference (init_proto, scale_y): divided by sqrt(C / 10)
            summary.label_values.data /= (data.num_classes / 10) ** 0.5
        return summary

    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:
        if self.config.num_models < 1:
            raise DataValidationError(f"num_models must be >= 1, got {self.config.num_models}")
        self._shape = (data.sample_shape, data.num_classes)
        self._device = device

    # -- the pool -----------------------------------------------------------------------------------------------
    def _new_member(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        assert self._shape is not None, "setup() must run first"
        model = build_model(self.config.model, sample_shape=self._shape[0], num_classes=self._shape[1],
                            **self.config.model_kwargs).to(self._device)
        return model, torch.optim.Adam(model.parameters(), lr=self.config.lr_model)

    def _init_pool(self) -> None:
        # staggered ages 0, 10, ..., 90 (for 10 members and 100 updates) so resets are spread over time
        self.pool, self.optimizers, self.counts = [], [], []
        for i in range(self.config.num_models):
            model, opt = self._new_member()
            self.pool.append(model)
            self.optimizers.append(opt)
            self.counts.append(i * self.config.max_online_updates // self.config.num_models)
        self.current = 0

    def _online_update(self, summary: Summary, ctx: StepContext) -> None:
        assert self.pool is not None
        i = self.current
        if self.counts[i] >= self.config.max_online_updates:
            self.pool[i], self.optimizers[i] = self._new_member()  # seeded by the step (torch.manual_seed)
            self.counts[i] = 0
        else:
            model, opt = self.pool[i], self.optimizers[i]
            x, targets = summary.materialize()
            if len(x) > self.config.online_batch:
                idx = torch.randperm(len(x), generator=ctx.generator)[: self.config.online_batch].to(x.device)
                x, targets = x[idx], targets[idx]
            model.train()
            loss = 0.5 * ((model(x) - targets) ** 2).sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.counts[i] += 1
        self.current = int(torch.randint(0, len(self.pool), (1,), generator=ctx.generator))

    # -- the step -----------------------------------------------------------------------------------------------
    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        """KRR (linear kernel on the current pool member's features) error on a real target batch, plus the margin.

        Shapes:
            summary.x: ``(n, *sample_shape)`` (the synthetic samples, with gradient); returns the 0-d outer loss.
        """
        cfg = self.config
        if self.pool is None:
            self._init_pool()
        assert self.pool is not None
        model = self.pool[self.current]
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            x_t, y_t = ctx.sample_uniform(cfg.target_batch)
            with torch.no_grad():
                f_t = model.embed(x_t)  # type: ignore[operator]
            x_s = summary.x
            targets = summary.targets() if cfg.learn_labels else summary.targets().detach()
            if summary.label_kind != "regression":
                targets = targets - 1.0 / summary.num_classes
            if cfg.use_flip:
                x_s, targets = torch.cat([x_s, x_s.flip(-1)]), torch.cat([targets, targets])
            f_s = model.embed(x_s)  # type: ignore[operator]
            loss = krr_loss(f_t @ f_s.T, f_s @ f_s.T, targets, one_hot_centred(y_t, ctx.data.num_classes),
                            reg=cfg.reg, float64=cfg.float64)
            if cfg.label_margin and cfg.learn_labels and summary.label_values is not None:
                # the reference sums the squared error over classes (C x krr_loss's mean) and adds the margin: the
                # margin / C keeps its balance at the loss scale the parameterizations' regularizers are set against
                margin = label_margin_loss(summary.label_values, summary.labels, kind=cfg.label_margin_kind)
                loss = loss + margin / summary.num_classes
        finally:
            for p in model.parameters():
                p.requires_grad_(True)
        return loss

    def run_step(self, summary: Summary, ctx: StepContext) -> float:
        value = ctx.update(self.outer_loss(summary, ctx))
        self._online_update(summary, ctx)
        return value

    # -- exact resume -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.pool is None:
            return {}
        return {
            "models": [copy.deepcopy(m.state_dict()) for m in self.pool],
            "optimizers": [copy.deepcopy(o.state_dict()) for o in self.optimizers],
            "counts": list(self.counts),
            "current": self.current,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.pool = None
            return
        missing = {"models", "optimizers", "counts", "current"} - set(state)
        if missing:
            raise DataValidationError(f"FRePO state lacks {sorted(missing)}; the checkpoint is incomplete")
        self.pool, self.optimizers = [], []
        for model_state, opt_state in zip(state["models"], state["optimizers"]):
            model, opt = self._new_member()
            model.load_state_dict(model_state)
            opt.load_state_dict(opt_state)
            self.pool.append(model)
            self.optimizers.append(opt)
        self.counts = list(state["counts"])
        self.current = int(state["current"])
