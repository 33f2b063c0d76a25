"""Coreset selection: which real samples of each class to keep (herding, k-center, random).

Used by the coreset baselines (:mod:`distill_core.baselines`) and by every method's ``init`` option: a summary may
start from the samples the best coreset would pick (``init="herding"`` / ``"kcenter"``) instead of random ones, so
that distillation improves on the coreset rather than on a random subset (representative initialisation, as in
DREAM, Liu et al., ICCV 2023, https://arxiv.org/abs/2302.14416, which starts from cluster centres).

- herding (Welling, ICML 2009, https://dl.acm.org/doi/10.1145/1553374.1553517): per class, greedily add the sample
  that keeps the running mean of the selected features closest to the class mean.
- k-center (Sener & Savarese, ICLR 2018, https://arxiv.org/abs/1708.00489): per class, greedy farthest-point
  selection, started from the sample nearest the class mean.

Features come from the modality (:meth:`~distill_core.modality.Modality.features`, e.g. a randomly initialised
ConvNet's embedding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .data import ClassIndex, RealData

if TYPE_CHECKING:
    from .modality import Modality

__all__ = ["COVERAGE_SELECTIONS", "herding_select", "initial_indices", "k_center_select", "select_per_class"]

#: the selections that pick by features (``random`` draws uniformly)
COVERAGE_SELECTIONS = ("herding", "kcenter")


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


def select_per_class(data: RealData, sizes: list[int], *, selection: str, modality: Modality,
                     generator: torch.Generator, candidates_per_class: int = 2000) -> Tensor:
    """Indices of ``sizes[c]`` training samples of each class ``c`` chosen by ``selection`` (``"random"``,
    ``"herding"`` or ``"kcenter"``), class by class. Herding and k-center choose among at most
    ``candidates_per_class`` random samples of the class (bounding the feature cost on large classes), in the
    features of a network seeded from ``generator``."""
    index = ClassIndex(data.y_train, data.num_classes)
    chosen: list[Tensor] = []
    for c, size in enumerate(sizes):
        if selection == "random":
            chosen.append(index.sample(c, size, generator=generator))
            continue
        pool = index.sample(c, max(size, candidates_per_class), generator=generator)
        feats = modality.features(data, pool, seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
        pick = herding_select(feats, size) if selection == "herding" else k_center_select(feats, size)
        chosen.append(pool[pick])
    return torch.cat(chosen)


def initial_indices(init: str, data: RealData, sizes: list[int], *, modality: Modality,
                    generator: torch.Generator) -> Tensor:
    """The real samples a summary starts from: the herding / k-center coreset for ``init="herding"`` /
    ``"kcenter"``, else ``sizes[c]`` random samples per class (``"real"``; ``"noise"`` replaces them afterwards)."""
    if init in COVERAGE_SELECTIONS:
        return select_per_class(data, sizes, selection=init, modality=modality, generator=generator)
    return ClassIndex(data.y_train, data.num_classes).sample_sizes(sizes, generator=generator)
