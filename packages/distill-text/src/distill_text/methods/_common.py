"""What the text methods share: the summary initialisation, a base class that uses it, and the options of the
unrolled methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from distill_core.coreset import initial_indices
from distill_core.data import Budget, RealData
from distill_core.method import C, Method, MethodConfig
from distill_core.modality import Modality
from distill_core.synset import Summary

__all__ = ["TextMethod", "UnrolledTextConfig", "init_text_summary"]


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


@dataclass
class UnrolledTextConfig(MethodConfig):
    """The options of the unrolled text methods (DD-text, DD-attn): Adam at lr 0.01 over the synthetic embeddings
    and their soft-label logits (Wang et al. 2018's outer optimiser), a learned positive inner learning rate
    (softplus), and per outer step ``inner_steps`` SGD steps of ``learner`` on the summary, scored on ``batch_real``
    class-balanced real sequences."""

    defaults = {"optimizer": "adam", "lr_summary": 0.01, "lr_labels": 0.01, "label_kind": "soft", "learn_lr": True}
    init: Literal["real", "noise"] = field(default="real", metadata={
        "help": "initial embeddings: random real sequences, or N(0,1) noise with real lengths"})
    learner: str = field(default="meanpool", metadata={
        "help": "the learner trained in the inner loop: meanpool, textcnn, transformer, or minilm-ft (the pretrained "
                "encoder + a head, fine-tuned)"})
    inner_steps: int = field(default=10, metadata={"help": "T: inner SGD steps on the summary"})
    batch_real: int = field(default=256, metadata={"help": "real sequences per outer step (class-balanced)"})
    checkpoint: bool = field(default=False, metadata={"help": "recompute inner steps in backward (less memory)"})
