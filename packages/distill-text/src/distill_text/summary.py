"""The text summary: synthetic token-embedding sequences that carry the model and sequence length they live in."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary, register_summary_type

__all__ = ["TextSummary"]


@register_summary_type
class TextSummary(Summary):
    """Per class ``ipc`` synthetic sequences ``(L, d + 1)`` (embeddings and a fixed mask channel), with labels
    (hard or learnable soft), an optional learned positive inner learning rate, and the embedding view they belong
    to.

    Args:
        model: the model name or folder whose input embeddings the sequences live in.
        model_id: hash of that model's embedding table (checked before evaluation and rendering).
        max_len: sequence length ``L``.
        embed_scale: the factor the embeddings were divided by.
        native_model: the learner the summary was distilled for (its native protocol), if any.
        native_steps: inner SGD steps of the native protocol (DD-text's ``T``), if any.
        native_kwargs: learner options of the native protocol (e.g. DD's fixed ``init_seed``).
        **kwargs: :class:`~distill_core.synset.Summary` arguments.

    Shapes:
        ``x``: ``(n, L, d + 1)``.
    """

    summary_type = "text"

    def __init__(self, *, model: str = "", model_id: str = "", max_len: int = 0, embed_scale: float = 1.0,
                 native_model: str | None = None, native_steps: int | None = None,
                 native_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.model_id = model_id
        self.max_len = max_len or int(self.x.shape[1])
        self.embed_scale = embed_scale
        self.native_model = native_model
        self.native_steps = native_steps
        self.native_kwargs = dict(native_kwargs or {})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model, "model_id": self.model_id, "L": self.max_len,
                "embed_scale": self.embed_scale, "native_model": self.native_model,
                "native_steps": self.native_steps, "native_kwargs": self.native_kwargs}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any],
                     preprocessing: Preprocessing) -> TextSummary:
        summary = super().from_tensors(tensors, meta, preprocessing)
        assert isinstance(summary, TextSummary)
        summary.model = str(meta.get("model", ""))
        summary.model_id = str(meta.get("model_id", ""))
        summary.max_len = int(meta.get("L") or summary.x.shape[1])
        summary.embed_scale = float(meta.get("embed_scale", 1.0))
        summary.native_model = meta.get("native_model")
        summary.native_steps = meta.get("native_steps")
        summary.native_kwargs = dict(meta.get("native_kwargs") or {})
        return summary
