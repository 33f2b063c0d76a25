"""Text dataset distillation over transformer token embeddings (DD-text with TBPTT, text-GM, text-DM)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
