"""Text distillation methods, one module each: ``dd-text`` (TBPTT, soft labels, learned lr), ``dd-attn``
(fine-tuning a pretrained encoder with soft and attention labels), ``text-gm`` (gradient matching) and ``text-dm``
(distribution matching)."""

from .dd_attn import DDAttn, DDAttnConfig
from .dd_text import DDText, DDTextConfig
from .text_dm import TextDM, TextDMConfig
from .text_gm import TextGM, TextGMConfig

__all__ = ["DDAttn", "DDAttnConfig", "DDText", "DDTextConfig", "TextDM", "TextDMConfig", "TextGM", "TextGMConfig"]
