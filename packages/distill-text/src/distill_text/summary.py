"""The text summaries: synthetic token-embedding sequences that carry the model and sequence length they live in;
with attention labels for ``dd-attn``."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary, register_summary_type

__all__ = ["AttentionTextSummary", "TextSummary"]


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


@register_summary_type
class AttentionTextSummary(TextSummary):
    """A :class:`TextSummary` with learnable attention labels (Maekawa et al., ACL 2023,
    https://aclanthology.org/2023.acl-short.12): per sequence, layer and head, target attention probabilities of
    the first ``q`` query positions (``q = 1``: the ``[CLS]`` row, the paper's ``cls`` labels; ``q = L``: every
    row), stored as logits and turned into probabilities over the sequence's unmasked keys.

    Args:
        attention_logits: initial logits ``(n, layers, heads, q, L)``, or ``None`` for a summary without attention
            labels.
        **kwargs: :class:`TextSummary` arguments.

    Shapes:
        ``attention_logits``: ``(n, layers, heads, q, L)``; :meth:`attention_targets`: the same shape.
    """

    summary_type = "text-attn"

    def __init__(self, *, attention_logits: Tensor | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.attention_logits: nn.Parameter | None = None
        if attention_logits is not None:
            self.attention_logits = nn.Parameter(attention_logits.detach().clone().float())

    def attention_targets(self) -> Tensor | None:
        """Target attention probabilities ``(n, layers, heads, q, L)``: softmax of the logits over each sequence's
        unmasked keys; rows of masked query positions are zero (they are not matched). ``None`` without labels."""
        if self.attention_logits is None:
            return None
        mask = self.x[..., -1].detach() > 0.5  # (n, L)
        q = self.attention_logits.shape[-2]
        keys = mask[:, None, None, None, :]
        probs = self.attention_logits.masked_fill(~keys, float("-inf")).softmax(-1)
        return probs * mask[:, None, None, :q, None].to(probs.dtype)

    def stored_tensors(self) -> dict[str, Tensor]:
        out = super().stored_tensors()
        if self.attention_logits is not None:
            out["attention_logits"] = self.attention_logits
        return out

    def describe(self) -> dict[str, Any]:
        shape = None if self.attention_logits is None else list(self.attention_logits.shape)
        return {**super().describe(), "attention_labels": shape}

    def label_tensors(self) -> dict[str, Tensor]:
        out = super().label_tensors()
        if self.attention_logits is not None:
            out["attention_logits"] = self.attention_logits.detach().cpu().contiguous()
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any],
                     preprocessing: Preprocessing) -> AttentionTextSummary:
        summary = super().from_tensors(tensors, meta, preprocessing)
        assert isinstance(summary, AttentionTextSummary)
        if "attention_logits" in tensors:
            summary.attention_logits = nn.Parameter(tensors["attention_logits"].float().clone())
        return summary
