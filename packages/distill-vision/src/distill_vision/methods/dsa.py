"""Dataset Condensation with Differentiable Siamese Augmentation (DSA: Zhao & Bilen, ICML 2021,
https://arxiv.org/abs/2102.08259).

DC's gradient matching where the real and the synthetic batch of a class are augmented with the same randomly
chosen transformation and the same parameters (one shared draw per class and step), so the gradient of the
augmentation flows into the synthetic images; the inner network updates use per-sample (non-Siamese) DSA.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from distill_core.data import RealData
from distill_core.synset import Summary

from ..augment import DEFAULT_STRATEGY
from ..modality import default_strategy
from .dc import DC, DCConfig

__all__ = ["DSA", "DSAConfig"]


@dataclass
class DSAConfig(DCConfig):
    """DC's settings plus the DSA strategy (readme: no flip on digit datasets; "auto" picks it by dataset)."""

    dsa_strategy: str | None = field(default="auto", metadata={
        "help": f"Siamese augmentation strategy; 'auto' = {DEFAULT_STRATEGY} (no flip on digits)"})


class DSA(DC):
    """Gradient matching with differentiable Siamese augmentation (Zhao & Bilen, ICML 2021)."""

    config_class = DSAConfig
    paper = "https://arxiv.org/abs/2102.08259"

    def setup(self, summary: Summary, data: RealData, device: torch.device) -> None:  # type: ignore[override]
        if self.config.dsa_strategy == "auto":
            self.config.dsa_strategy = default_strategy(data.name)
        super().setup(summary, data, device)
