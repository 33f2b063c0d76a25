"""Graph condensation methods, one module each (registered under the entry-point group ``distill.methods``)."""

from .doscond import DosCond, DosCondConfig
from .gcdm import GCDM, GCDMConfig
from .gcond import GCond, GCondConfig
from .gcond_x import GCondX, GCondXConfig

__all__ = ["GCDM", "DosCond", "DosCondConfig", "GCDMConfig", "GCond", "GCondConfig", "GCondX", "GCondXConfig"]
