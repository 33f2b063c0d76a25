"""Parameterizations of image summaries (``--param NAME``), one module each; importing this package imports every
module in it, which registers its parameterization with :mod:`distill_core.parameterized`."""

import importlib
import pkgutil

from .idc import MultiFormation
from .linba import LinearBases

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["LinearBases", "MultiFormation"]
