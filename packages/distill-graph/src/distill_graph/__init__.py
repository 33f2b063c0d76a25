"""Graph condensation (GCond, GCond-X, DosCond, GCDM) with sparse adjacency on torch-geometric.

The real graph stays sparse end to end (``edge_index`` and sparse CSR operators); only the small synthetic graph is
dense. Methods register under ``distill.methods`` (``distill run gcond --dataset cora --ratio 0.026``), the modality
under ``distill.modalities``.
"""

from .data import load_graph, make_sbm_graph, real_data_from_graph, validate_graph
from .graph import Propagation
from .modality import GraphModality, cross_architecture_protocols
from .models import APPNP, GCN, MLP, SGC, GraphSAGE, build_graph_model
from .summary import GraphSummary, StructureGenerator
from .training import fit_graph_model, whole_graph_accuracy

__version__ = "0.1.0"

__all__ = [
    "APPNP",
    "GCN",
    "MLP",
    "SGC",
    "GraphModality",
    "GraphSAGE",
    "GraphSummary",
    "Propagation",
    "StructureGenerator",
    "__version__",
    "build_graph_model",
    "cross_architecture_protocols",
    "fit_graph_model",
    "load_graph",
    "make_sbm_graph",
    "real_data_from_graph",
    "validate_graph",
    "whole_graph_accuracy",
]
