"""Coreset baselines at the same budget: the honest yardstick every distilled summary must beat.

- random: ``ipc`` random real samples per class.
- herding and k-center: the selections of :mod:`distill_core.coreset` in the modality's feature space.

The baselines are methods with zero outer steps, so they produce artifacts like any other method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .coreset import herding_select, k_center_select, select_per_class
from .data import Budget, RealData
from .method import Method, MethodConfig
from .modality import Modality
from .synset import Summary

__all__ = ["CoresetConfig", "Herding", "KCenter", "RandomSubset", "herding_select", "k_center_select"]


@dataclass
class CoresetConfig(MethodConfig):
    """Coreset baselines take no outer steps."""

    steps: int = field(default=0, metadata={"help": "outer iterations (coresets take none)"})
    candidates_per_class: int = field(default=2000, metadata={
        "help": "random candidates per class whose features are computed (bounds the cost on large classes)"})


class _Coreset(Method[CoresetConfig]):
    selection: str = "random"

    def init_summary(self, data: RealData, *, budget: Budget, modality: Modality,
                     generator: torch.Generator) -> Summary:
        chosen = select_per_class(data, budget.per_class(data), selection=self.selection, modality=modality,
                                  generator=generator, candidates_per_class=self.config.candidates_per_class)
        return modality.subset_summary(data, chosen, label_kind="hard")

    def run_step(self, summary: Summary, ctx: Any) -> float:  # pragma: no cover - steps is 0
        return 0.0


class RandomSubset(_Coreset):
    """Random real samples, ``ipc`` per class."""

    selection = "random"


class Herding(_Coreset):
    """Herding in the modality's feature space (Welling 2009)."""

    selection = "herding"


class KCenter(_Coreset):
    """Greedy k-center in the modality's feature space (Sener & Savarese 2018)."""

    selection = "kcenter"
