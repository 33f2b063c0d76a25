"""Learners over token-embedding sequences.

Every learner takes ``x`` of shape ``(N, L, d + 1)``: ``d`` embedding channels and a last channel holding the
attention mask. The mask is read through a threshold (``> 0.5``), so it is never differentiated: the synthetic
sequences keep the lengths they were initialised with while their embeddings are learned. Inputs in float16 (the
stored real data) are cast to the learner's dtype.

- :class:`TextCNN`: Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014,
  https://arxiv.org/abs/1408.5882 (filter widths 3/4/5, 100 maps each, ReLU, max-over-time pooling, dropout 0.5).
- :class:`TransformerClassifier`: a 2-layer pre-norm transformer encoder with learned positions and masked mean
  pooling (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762).
- :class:`MeanPoolLinear`: L2-normalised masked mean of the embeddings followed by a linear layer (a
  bag-of-embeddings model).
- :class:`FrozenEncoderHead`: the pretrained encoder (all-MiniLM-L6-v2 by default), frozen, fed the sequences
  through ``inputs_embeds``; mean-pooled output (as sentence-transformers pools it) and a trained linear head.
- :class:`EncoderClassifier`: the same pretrained encoder with a linear head, every weight trainable (fine-tuning;
  the ``dd-attn`` learner), dropout off, optionally returning its attention probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EncoderClassifier", "FrozenEncoderHead", "MeanPoolLinear", "TextCNN", "TransformerClassifier", "split_mask"]


def split_mask(x: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``(embeddings (N, L, d), mask (N, L))`` of an input ``(N, L, d + 1)``, both in ``dtype``.

    Padding positions are zeroed in the embeddings, so they contribute nothing and receive no gradient.
    """
    if x.dim() != 3:
        raise ValueError(f"text learners expect (N, L, d + 1) inputs, got shape {tuple(x.shape)}")
    mask = (x[..., -1] > 0.5).to(dtype)
    return x[..., :-1].to(dtype) * mask.unsqueeze(-1), mask


def _masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    return (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)


class TextCNN(nn.Module):
    """Kim (2014)'s CNN for sentence classification over fixed token embeddings.

    Args:
        embed_dim: embedding size ``d``.
        num_classes: number of classes.
        widths: convolution window sizes (3, 4, 5 in the paper).
        filters: feature maps per width (100 in the paper).
        dropout: dropout on the pooled features (0.5 in the paper).

    Shapes:
        x: ``(N, L, d + 1)`` with ``L >= max(widths)``; returns logits ``(N, num_classes)``.
    """

    def __init__(self, *, embed_dim: int, num_classes: int, widths: Sequence[int] = (3, 4, 5), filters: int = 100,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, w) for w in self.widths)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(filters * len(self.widths), num_classes)
        self.feature_dim = filters * len(self.widths)

    def embed(self, x: Tensor) -> Tensor:
        """Max-over-time pooled feature maps ``(N, filters * len(widths))``."""
        emb, _ = split_mask(x, self.fc.weight.dtype)
        h = emb.transpose(1, 2)
        if h.shape[-1] < max(self.widths):  # zero padding, as the paper pads short sentences
            h = F.pad(h, (0, max(self.widths) - h.shape[-1]))
        return torch.cat([F.relu(conv(h)).amax(-1) for conv in self.convs], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.dropout(self.embed(x)))


class TransformerClassifier(nn.Module):
    """A small transformer encoder classifier.

    Args:
        embed_dim: embedding size ``d``.
        num_classes: number of classes.
        max_len: the longest sequence (size of the learned position table).
        width: model width (the embeddings are projected to it).
        heads: attention heads.
        layers: encoder layers (2).
        ff: feed-forward width.
        dropout: dropout inside the layers.

    Shapes:
        x: ``(N, L, d + 1)`` with ``L <= max_len``; returns logits ``(N, num_classes)``.
    """

    def __init__(self, *, embed_dim: int, num_classes: int, max_len: int, width: int = 128, heads: int = 4,
                 layers: int = 2, ff: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.proj = nn.Linear(embed_dim, width)
        self.pos = nn.Parameter(torch.randn(max_len, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, ff, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, num_classes)
        self.feature_dim = width

    def embed(self, x: Tensor) -> Tensor:
        """Masked mean of the encoder outputs ``(N, width)``."""
        emb, mask = split_mask(x, self.fc.weight.dtype)
        h = self.proj(emb) + self.pos[: emb.shape[1]]
        h = self.encoder(h, src_key_padding_mask=mask < 0.5)
        return _masked_mean(self.norm(h), mask)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))


class MeanPoolLinear(nn.Module):
    """Masked mean of the token embeddings, L2-normalised, followed by a linear classifier.

    The normalisation makes the model invariant to the scale of its input, so one inner learning rate is stable
    whatever the sentence length (short phrases have much larger mean vectors than long reviews) and however the
    distilled embeddings grow; train it with a learning rate near 1 (:func:`~distill_text.modality.plain_protocol`
    does).

    Shapes:
        x: ``(N, L, d + 1)``; returns logits ``(N, num_classes)``.
    """

    def __init__(self, *, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(embed_dim, num_classes)
        self.feature_dim = embed_dim

    def embed(self, x: Tensor) -> Tensor:
        emb, mask = split_mask(x, self.fc.weight.dtype)
        return F.normalize(_masked_mean(emb, mask), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))


class FrozenEncoderHead(nn.Module):
    """A linear head on the frozen pretrained encoder fed the sequences through ``inputs_embeds``.

    Args:
        model_path: the transformers model folder the sequences were embedded with.
        embed_scale: the factor the stored embeddings were divided by (multiplied back here).
        num_classes: number of classes.
        batch_size: encoder batch size.

    Shapes:
        x: ``(N, L, d + 1)``; returns logits ``(N, num_classes)``.
    """

    def __init__(self, *, model_path: str | Path, embed_scale: float, num_classes: int, batch_size: int = 64) -> None:
        super().__init__()
        from .encoder import load_transformer

        # kept out of the module tree: the encoder is frozen and shared, only the head is trained
        self._encoder = [load_transformer(Path(model_path))]
        self.embed_scale = float(embed_scale)
        self.batch_size = batch_size
        hidden = int(self._encoder[0].config.hidden_size)
        self.fc = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """Mean-pooled encoder outputs ``(N, hidden)`` (no gradient: the encoder is frozen)."""
        encoder = self._encoder[0].to(x.device)
        out = []
        for start in range(0, len(x), self.batch_size):
            emb, mask = split_mask(x[start:start + self.batch_size], torch.float32)
            h = encoder(inputs_embeds=emb * self.embed_scale, attention_mask=mask.long()).last_hidden_state
            out.append(_masked_mean(h, mask))
        return torch.cat(out)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.embed(x))


class EncoderClassifier(nn.Module):
    """The pretrained encoder (a copy of its weights, all trainable) with a linear head: the learner that
    ``dd-attn`` fine-tunes (Maekawa et al., ACL 2023, https://aclanthology.org/2023.acl-short.12).

    The encoder runs with eager attention (so that it can return attention probabilities) and without dropout (as
    the paper's learner). The head reads the masked mean of the last hidden states (how sentence-transformers pools
    all-MiniLM-L6-v2; the paper's BERT reads the pooled ``[CLS]`` token) and starts from N(0, 0.02) weights and a
    zero bias (BERT's initialisation of a new classifier). The word-embedding table is not used (the sequences come
    in through ``inputs_embeds``) and is frozen.

    Args:
        model_path: the transformers model folder the sequences were embedded with.
        embed_scale: the factor the stored embeddings were divided by (multiplied back here).
        num_classes: number of classes.
        max_len: the sequence length ``L`` the learner will see (checked against the model's positions).

    Shapes:
        x: ``(N, L, d + 1)``; returns logits ``(N, num_classes)``, or with :attr:`return_attentions` the pair
        ``(logits, attentions)`` with attentions ``(N, layers, heads, L, L)`` (rows: queries, columns: keys).

    Raises:
        DataValidationError: the model has no self-attention, or ``max_len`` exceeds its position embeddings.
    """

    def __init__(self, *, model_path: str | Path, embed_scale: float, num_classes: int, max_len: int = 0) -> None:
        super().__init__()
        from .encoder import load_finetune_encoder

        self.encoder = load_finetune_encoder(Path(model_path), max_len)
        self.embed_scale = float(embed_scale)
        hidden = int(self.encoder.config.hidden_size)
        self.num_layers = int(self.encoder.config.num_hidden_layers)
        self.num_heads = int(self.encoder.config.num_attention_heads)
        self.fc = nn.Linear(hidden, num_classes)
        self.feature_dim = hidden
        #: return ``(logits, attentions)`` instead of logits (what the inner loop's attention loss reads)
        self.return_attentions = False
        self.reset_head()

    def reset_head(self, generator: torch.Generator | None = None) -> None:
        """Draw a new head: weights N(0, 0.02), bias 0."""
        with torch.no_grad():
            self.fc.weight.normal_(0.0, 0.02, generator=generator)
            self.fc.bias.zero_()

    def embed(self, x: Tensor) -> Tensor:
        """Masked mean of the last hidden states ``(N, hidden)``."""
        return self._encode(x)[0]

    def _encode(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...] | None]:
        emb, mask = split_mask(x, self.fc.weight.dtype)
        out = self.encoder(inputs_embeds=emb * self.embed_scale, attention_mask=mask.long(),
                           output_attentions=self.return_attentions)
        return _masked_mean(out.last_hidden_state, mask), out.attentions if self.return_attentions else None

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        pooled, attentions = self._encode(x)
        logits = self.fc(pooled)
        if attentions is None:
            return logits
        return logits, torch.stack(attentions, dim=1)
