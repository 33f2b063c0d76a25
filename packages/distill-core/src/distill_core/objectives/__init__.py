"""Outer objectives: what a method matches between the summary and the real data."""

from .distribution_matching import classwise_mean_embedding_distance, gaussian_mmd2, mean_embedding_distance
from .gradient_matching import GradientMetric, gradient_match_distance, layerwise_distance
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
    "mean_embedding_distance",
    "unrolled_sgd",
]
