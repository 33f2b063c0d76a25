"""Shared test setup: the toy modality and small test-only methods.

Importing :mod:`distill_core.testing` registers :class:`~distill_core.testing.ToyModality` as ``"toy"`` (vectors and
MLPs, the ``"blobs"`` dataset), so the CLI and the runner find it. The methods below are registered under names that
start with ``test_`` so they can never shadow a real method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import Tensor

import distill_core.testing  # noqa: F401  (registers ToyModality as "toy")
from distill_core import Method, RealData, StepContext, Summary, register_method
from distill_core.objectives import mean_embedding_distance
from distill_core.objectives.distribution_matching import DistributionMatchingConfig
from distill_core.testing import make_blobs

torch.set_num_threads(1)  # tiny tensors; the CI machines are shared

TOY_DM = "test_toy_dm"
TOY_NAN = "test_toy_nan"


@dataclass
class ToyDMConfig(DistributionMatchingConfig):
    """A few fast steps of distribution matching on blobs."""

    defaults = {"steps": 20, "batch_real": 16}
    width: int = field(default=32, metadata={"help": "width of the random embedding MLP"})


@register_method(TOY_DM)
class ToyDM(Method[ToyDMConfig]):
    """Test-only DM (Zhao & Bilen, https://arxiv.org/abs/2110.04181): match class-wise mean embeddings of a freshly
    initialised random MLP, one optimizer step per outer step. Counts its steps as method state so that resume
    tests also check that method state is restored."""

    modality = "toy"
    config_class = ToyDMConfig

    def __init__(self, *, config: ToyDMConfig | None = None) -> None:
        super().__init__(config=config)
        self.calls = 0

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        self.calls += 1
        net = ctx.fresh_model("mlp", width=self.config.width)
        embed = net[:-1]  # Flatten, Linear, ReLU: drop the classifier head
        for p in embed.parameters():
            p.requires_grad_(False)
        loss = summary.x.new_zeros(())
        for c in range(ctx.data.num_classes):
            real = ctx.sample_real(c, self.config.batch_real)
            loss = loss + mean_embedding_distance(embed(real), embed(summary.x[summary.class_mask(c)]))
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = int(state["calls"])


@dataclass
class ToyNaNConfig(ToyDMConfig):
    nan_at: int = field(default=3, metadata={"help": "outer step from which the loss is NaN"})


@register_method(TOY_NAN)
class ToyNaN(ToyDM):
    """Test-only: :class:`ToyDM` whose loss becomes NaN from step ``nan_at`` on."""

    config_class = ToyNaNConfig

    def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
        loss = super().outer_loss(summary, ctx)
        return loss * float("nan") if ctx.step >= self.config.nan_at else loss  # type: ignore[attr-defined]


@pytest.fixture
def blobs() -> RealData:
    """3 classes x 40 training samples of 8-D Gaussian blobs (20 per class in the test split), seeded."""
    return make_blobs()


@pytest.fixture
def toy_modality():  # type: ignore[no-untyped-def]
    from distill_core import get_modality

    return get_modality("toy")


def toy_summary(data: RealData, *, ipc: int = 2, seed: int = 0, **kwargs: Any) -> Summary:
    """``ipc`` seeded real samples per class of ``data`` as a summary."""
    from distill_core import ClassIndex

    index = ClassIndex(data.y_train, data.num_classes)
    chosen = index.sample_balanced(ipc, generator=torch.Generator().manual_seed(seed))
    return Summary(x=data.x_train[chosen], labels=data.y_train[chosen], num_classes=data.num_classes,
                   preprocessing=data.preprocessing, **kwargs)


@pytest.fixture
def make_summary():  # type: ignore[no-untyped-def]
    return toy_summary
