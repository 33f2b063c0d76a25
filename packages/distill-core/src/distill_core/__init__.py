"""distill-core: the modality-free data-distillation framework (summary, outer loop, objectives, evaluation,
artifacts, baselines, registry and CLI). See ../../ARCHITECTURE in the repository for the design."""

from . import kernels, objectives
from .artifact import Artifact, load_artifact
from .baselines import Herding, KCenter, RandomSubset, herding_select, k_center_select
from .data import Budget, ClassIndex, RealData, validate_budget, validate_real_data
from .distiller import Callback, CheckpointCallback, Distiller, EvaluationCallback, RunResult
from .errors import (
    ArtifactError,
    DataValidationError,
    DistillError,
    DivergenceError,
    MissingDependencyError,
    UnknownNameError,
)
from .evaluation import EvalProtocol, EvalResult, evaluate_cross_architecture, evaluate_summary, train_classifier
from .evaluation_krr import evaluate_krr
from .method import Method, MethodConfig, StepContext
from .modality import Modality
from .paths import user_cache_dir
from .preprocessing import ChannelNormalization, Preprocessing, ZCAWhitening
from .registry import get_method, get_modality, list_methods, list_modalities, register_method, register_modality
from .runner import distill, evaluate_artifact
from .synset import Summary, register_summary_type

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactError",
    "Budget",
    "Callback",
    "ChannelNormalization",
    "CheckpointCallback",
    "ClassIndex",
    "DataValidationError",
    "DistillError",
    "Distiller",
    "DivergenceError",
    "EvalProtocol",
    "EvalResult",
    "EvaluationCallback",
    "Herding",
    "KCenter",
    "Method",
    "MethodConfig",
    "MissingDependencyError",
    "Modality",
    "Preprocessing",
    "RandomSubset",
    "RealData",
    "RunResult",
    "StepContext",
    "Summary",
    "UnknownNameError",
    "ZCAWhitening",
    "__version__",
    "distill",
    "evaluate_artifact",
    "evaluate_cross_architecture",
    "evaluate_krr",
    "evaluate_summary",
    "get_method",
    "get_modality",
    "herding_select",
    "k_center_select",
    "kernels",
    "list_methods",
    "list_modalities",
    "load_artifact",
    "objectives",
    "register_method",
    "register_modality",
    "register_summary_type",
    "train_classifier",
    "user_cache_dir",
    "validate_budget",
    "validate_real_data",
]
