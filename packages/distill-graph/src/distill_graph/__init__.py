"""Graph condensation (GCond, GCond-X, DosCond, GCDM) with sparse adjacency on torch-geometric."""

__version__ = "0.1.0"

__all__ = ["__version__"]
