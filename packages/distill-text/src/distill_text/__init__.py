"""Text dataset distillation over transformer token embeddings (DD-text with TBPTT, text-GM, text-DM).

Texts become ``(L, d + 1)`` sequences of a transformer's input token embeddings plus a mask channel
(:mod:`distill_text.data`); the methods learn synthetic sequences in that continuous view and the modality plugs
them into distill-core's loop, evaluation, artifacts and CLI.
"""

from .data import NAMED_SETS, TextSpec, encode_texts, load_text_data, parse_spec, read_texts
from .encoder import DEFAULT_MODEL, Encoder, default_model_path, load_encoder, resolve_model_path
from .methods import DDAttn, DDAttnConfig, DDText, DDTextConfig, TextDM, TextDMConfig, TextGM, TextGMConfig
from .modality import TextModality, native_protocol, plain_protocol
from .models import EncoderClassifier, FrozenEncoderHead, MeanPoolLinear, TextCNN, TransformerClassifier, split_mask
from .summary import AttentionTextSummary, TextSummary

__version__ = "0.1.0"

__all__ = [
    "AttentionTextSummary",
    "DDAttn",
    "DDAttnConfig",
    "DEFAULT_MODEL",
    "DDText",
    "DDTextConfig",
    "Encoder",
    "EncoderClassifier",
    "FrozenEncoderHead",
    "MeanPoolLinear",
    "NAMED_SETS",
    "TextCNN",
    "TextDM",
    "TextDMConfig",
    "TextGM",
    "TextGMConfig",
    "TextModality",
    "TextSpec",
    "TextSummary",
    "TransformerClassifier",
    "__version__",
    "default_model_path",
    "encode_texts",
    "load_encoder",
    "load_text_data",
    "native_protocol",
    "parse_spec",
    "plain_protocol",
    "read_texts",
    "resolve_model_path",
    "split_mask",
]
