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
from .trajectory import StepPlan, normalized_distance, plan_steps, trajectory_backward, trajectory_loss
from .unrolled import init_params, unrolled_sgd

__all__ = [
    "GradientMetric",
    "SingularKernelError",
    "StepPlan",
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
    "normalized_distance",
    "plan_steps",
    "soft_cross_entropy",
    "train_on_summary",
    "trajectory_backward",
    "trajectory_loss",
    "unrolled_sgd",
]
