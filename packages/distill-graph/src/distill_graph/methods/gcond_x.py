"""GCond-X: GCond without structure (Jin et al., ICLR 2022, https://arxiv.org/abs/2110.07580, section 4).

Only the synthetic node features are learned; the synthetic graph has no edges, so with GCN normalisation's self
loops every propagation is the identity and the backbone sees ``X'`` alone. There is no structure generator at all:
nothing but ``X'`` is optimised, and the artifact stores zero edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from distill_core.errors import DataValidationError
from distill_core.registry import register_method

from .gcond import GCond, GCondConfig

__all__ = ["GCondX", "GCondXConfig"]


@dataclass
class GCondXConfig(GCondConfig):
    """GCond's settings with the structure switched off (GCond's ``lr_adj 0`` code path)."""

    structure: Literal["pge", "identity"] = field(default="identity", metadata={
        "help": "always 'identity' (no edges) for GCond-X"})
    lr_adj: float = field(default=0.0, metadata={"help": "unused: GCond-X has no structure generator"})

    def __post_init__(self) -> None:
        if self.structure != "identity":
            raise DataValidationError("GCond-X has no structure; use method 'gcond' for a generated structure")


@register_method("gcond-x")
class GCondX(GCond):
    """GCond-X (Jin et al., ICLR 2022): gradient matching of node features only, no synthetic edges."""

    config_class = GCondXConfig
    structure_kind = "identity"
