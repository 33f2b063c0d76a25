"""Image data distillation (DC, DSA, DM, KIP, RFAD, FRePO, DD, ...) on ConvNet and friends."""

__version__ = "0.1.0"

__all__ = ["__version__"]
