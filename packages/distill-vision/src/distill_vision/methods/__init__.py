"""Image distillation methods, one module each (found through the entry-point group ``distill.methods``)."""

from ._base import VisionMethod
from .cafe import CAFE, CAFEConfig
from .datm import DATM, DATMConfig
from .dc import DC, DCConfig, loop_schedule
from .dcc import DCC, DSAC, DCCConfig, DSACConfig
from .dd import DD, DDConfig, native_protocol
from .dm import DM, DMConfig
from .dp_dm import DPDM, DPDMConfig
from .dsa import DSA, DSAConfig
from .frepo import FRePO, FRePOConfig
from .kip import KIP, KIPConfig
from .mtt import MTT, MTTConfig, VisionTrajectoryMatching
from .rfad import RFAD, RFADConfig
from .tesla import TESLA, TESLAConfig

__all__ = ["CAFE", "CAFEConfig", "DATM", "DATMConfig", "DC", "DCC", "DCCConfig", "DCConfig", "DD", "DDConfig", "DM",
           "DMConfig", "DPDM", "DPDMConfig", "DSA", "DSAC", "DSACConfig", "DSAConfig", "FRePO", "FRePOConfig", "KIP",
           "KIPConfig", "MTT", "MTTConfig", "RFAD", "RFADConfig", "TESLA", "TESLAConfig", "VisionMethod",
           "VisionTrajectoryMatching", "loop_schedule", "native_protocol"]
