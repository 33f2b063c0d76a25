"""Outer objectives: what a method matches between the summary and the real data."""

from .classification import soft_cross_entropy, train_on_summary
from .distribution_matching import classwise_mean_embedding_distance, gaussian_mmd2, mean_embedding_distance
from .gradient_matching import (
    GradientMetric,
    classwise_gradient_match,
    gradient_match_distance,
    layerwise_distance,
    loop_schedule,
)
from .krr import (
    SingularKernelError,
    blocked_kernel,
    krr_loss,
    krr_predict,
    krr_predict_blocked,
    krr_regularizer,
    krr_solve,
)
from .unrolled import init_params, unrolled_sgd

__all__ = [
    "GradientMetric",
    "SingularKernelError",
    "blocked_kernel",
    "classwise_gradient_match",
    "classwise_mean_embedding_distance",
    "gaussian_mmd2",
    "gradient_match_distance",
    "init_params",
    "krr_loss",
    "krr_predict",
    "krr_predict_blocked",
    "krr_regularizer",
    "krr_solve",
    "layerwise_distance",
    "loop_schedule",
    "mean_embedding_distance",
    "soft_cross_entropy",
    "train_on_summary",
    "unrolled_sgd",
]
