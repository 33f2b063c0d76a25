"""Coreset baselines at the same budget: the honest yardstick every distilled summary must beat.

- random: ``ipc`` random real samples per class.
- herding (Welling, ICML 2009, https://dl.acm.org/doi/10.1145/1553374.1553517): per class, greedily add the sample
  that keeps the running mean of the selected features closest to the class mean.
- k-center (Sener & Savarese, ICLR 2018, https://arxiv.org/abs/1708.00489): per class, greedy farthest-point
  selection, started from the sample nearest the class mean.

Features come from the modality (:meth:`Modality.features`, e.g. a randomly initialised ConvNet's embedding).
The baselines are methods with zero outer steps, so they produce artifacts like any other method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .data import Budget, ClassIndex, RealData
from .method import Method, MethodConfig
from .modality import Modality
from .synset import Summary

__all__ = ["CoresetConfig", "Herding", "KCenter", "RandomSubset", "herding_select", "k_center_select"]


def herding_select(features: Tensor, k: int) -> Tensor:
    """Indices of ``k`` rows of ``features (n, d)`` chosen by herding (distinct, in selection order)."""
    mean = features.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mean)
    available = torch.ones(len(features), dtype=torch.bool)
    for t in range(min(k, len(features))):
        candidate_means = (running * t + features) / (t + 1)
        dist = (candidate_means - mean).norm(dim=1)
        dist[~available] = float("inf")
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running = candidate_means[i]
    return torch.tensor(chosen, dtype=torch.long)


def k_center_select(features: Tensor, k: int) -> Tensor:
    """Indices of ``k`` rows of ``features (n, d)`` by greedy k-center, starting at the row nearest the mean
    (distinct: a chosen row is never picked again, even when duplicate rows leave every distance at 0)."""
    first = int((features - features.mean(0)).norm(dim=1).argmin())
    chosen = [first]
    min_dist = (features - features[first]).norm(dim=1)
    min_dist[first] = -1.0
    for _ in range(1, min(k, len(features))):
        i = int(min_dist.argmax())
        chosen.append(i)
        min_dist = torch.minimum(min_dist, (features - features[i]).norm(dim=1))
        min_dist[chosen] = -1.0
    return torch.tensor(chosen, dtype=torch.long)


@dataclass
class CoresetConfig(MethodConfig):
    """Coreset baselines take no outer steps."""

    steps: int = field(default=0, metadata={"help": "outer iterations (coresets take none)"})
    candidates_per_class: int = field(default=2000, metadata={
        "help": "random candidates per class whose features are computed (bounds the cost on large classes)"})


class _Coreset(Method[CoresetConfig]):
    config_class = CoresetConfig
    selection: str = "random"

    def init_summary(self, data: RealData, *, budget: Budget, modality: Modality,
                     generator: torch.Generator) -> Summary:
        index = ClassIndex(data.y_train, data.num_classes)
        chosen: list[Tensor] = []
        for c, size in enumerate(budget.per_class(data)):
            if self.selection == "random":
                chosen.append(index.sample(c, size, generator=generator))
                continue
            pool = index.sample(c, max(size, self.config.candidates_per_class), generator=generator)
            feats = modality.features(data, pool, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            pick = herding_select(feats, size) if self.selection == "herding" else k_center_select(feats, size)
            chosen.append(pool[pick])
        return modality.subset_summary(data, torch.cat(chosen), label_kind="hard")

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
