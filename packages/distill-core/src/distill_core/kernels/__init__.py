"""Kernels of infinitely wide (and random finite) networks: analytic FC NNGP/NTK, empirical NTK (torch.func) and
random-feature NNGP estimates (RFAD). Every kernel is checked against a Monte-Carlo or explicit-Jacobian estimate in
the tests."""

from .empirical import empirical_ntk, jacobian_block
from .fc import fc_kernel_diag, fc_kernels, fc_nngp, fc_ntk
from .random_features import RandomFeatureNNGP, random_feature_kernel, random_features

__all__ = [
    "RandomFeatureNNGP",
    "empirical_ntk",
    "fc_kernel_diag",
    "fc_kernels",
    "fc_nngp",
    "fc_ntk",
    "jacobian_block",
    "random_feature_kernel",
    "random_features",
]
