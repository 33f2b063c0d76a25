"""What the text methods share: the summary initialisation and a base class that uses it."""

from __future__ import annotations

import torch

from distill_core.coreset import initial_indices
from distill_core.data import Budget, RealData
from distill_core.method import C, Method, MethodConfig
from distill_core.modality import Modality
from distill_core.synset import Summary

__all__ = ["TextMethod", "init_text_summary"]


def init_text_summary(config: MethodConfig, data: RealData, *, budget: Budget, modality: Modality,
                      generator: torch.Generator) -> Summary:
    """``budget`` real sequences per class (random, or the herding / k-center coreset's with ``init="herding"`` /
    ``"kcenter"``); with ``init="noise"`` their embeddings are replaced by N(0, 1)
    noise while each keeps the length (mask channel) of the real sequence it replaced."""
    chosen = initial_indices(config.init, data, budget.per_class(data), modality=modality, generator=generator)
    summary = modality.subset_summary(data, chosen, label_kind=config.label_kind, learn_lr=config.learn_lr,
                                      lr_init=config.lr_init)
    if config.init == "noise":
        mask = summary.x.data[..., -1:].clone()
        summary.x.data.normal_(generator=generator)
        summary.x.data[..., :-1] *= mask
        summary.x.data[..., -1:] = mask
    return summary


class TextMethod(Method[C]):
    """A method on the text modality: its summary starts from :func:`init_text_summary`."""

    modality = "text"

    def init_summary(self, data: RealData, *, budget: Budget, modality: Modality,
                     generator: torch.Generator) -> Summary:
        return init_text_summary(self.config, data, budget=budget, modality=modality, generator=generator)
