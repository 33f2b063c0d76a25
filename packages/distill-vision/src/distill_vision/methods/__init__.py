"""Image distillation methods, one module each (found through the entry-point group ``distill.methods``)."""

from .dc import DC, DCConfig, loop_schedule
from .dd import DD, DDConfig, native_protocol
from .dm import DM, DMConfig
from .dsa import DSA, DSAConfig
from .frepo import FRePO, FRePOConfig
from .kip import KIP, KIPConfig
from .rfad import RFAD, RFADConfig

__all__ = ["DC", "DCConfig", "DD", "DDConfig", "DM", "DMConfig", "DSA", "DSAConfig", "FRePO", "FRePOConfig", "KIP",
           "KIPConfig", "RFAD", "RFADConfig", "loop_schedule", "native_protocol"]
