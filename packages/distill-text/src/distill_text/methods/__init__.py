"""Text distillation methods, one module each: ``dd-text`` (TBPTT, soft labels, learned lr), ``text-gm`` (gradient
matching) and ``text-dm`` (distribution matching)."""

from .dd_text import DDText, DDTextConfig
from .text_dm import TextDM, TextDMConfig
from .text_gm import TextGM, TextGMConfig

__all__ = ["DDText", "DDTextConfig", "TextDM", "TextDMConfig", "TextGM", "TextGMConfig"]
