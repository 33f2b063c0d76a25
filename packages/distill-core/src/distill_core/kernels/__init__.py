"""Kernels of infinitely wide (and random finite) networks: analytic FC NNGP/NTK, empirical NTK, random features.

Public surface re-exported from the private-ish implementation modules (neural-tangents style)."""

from .fc import fc_kernel_diag, fc_kernels, fc_nngp, fc_ntk

__all__ = ["fc_kernel_diag", "fc_kernels", "fc_nngp", "fc_ntk"]
