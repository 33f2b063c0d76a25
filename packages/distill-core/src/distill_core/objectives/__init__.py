"""Outer objectives: what a method matches between the summary and the real data."""

from .distribution_matching import classwise_mean_embedding_distance, gaussian_mmd2, mean_embedding_distance
from .gradient_matching import GradientMetric, gradient_match_distance, layerwise_distance

__all__ = [
    "GradientMetric",
    "classwise_mean_embedding_distance",
    "gaussian_mmd2",
    "gradient_match_distance",
    "layerwise_distance",
    "mean_embedding_distance",
]
