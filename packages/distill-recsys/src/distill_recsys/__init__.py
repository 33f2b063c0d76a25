"""Distill-CF: synthetic users for sparse implicit-feedback recommendation data, with infinity-AE."""

__version__ = "0.1.0"

__all__ = ["__version__"]
