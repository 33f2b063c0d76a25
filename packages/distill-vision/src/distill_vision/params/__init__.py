"""Parameterizations of image summaries (``--param NAME``), one module each; importing this package registers them
with :mod:`distill_core.parameterized`."""

from .idc import MultiFormation
from .linba import LinearBases

__all__ = ["LinearBases", "MultiFormation"]
