"""The base class of the image methods."""

from __future__ import annotations

from distill_core.method import C, Method

__all__ = ["VisionMethod"]


class VisionMethod(Method[C]):
    """A method on the image modality (``modality = "vision"``); its config is the one named in the base,
    ``class DM(VisionMethod[DMConfig])``."""

    modality = "vision"
