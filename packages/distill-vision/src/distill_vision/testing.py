"""Test helpers for vision methods, shipped with the package so that a method written outside this repository runs
the same contract: :class:`DigitsContract` is :class:`~distill_core.testing.MethodContract` on scikit-learn's
digits (seconds on a CPU), evaluated with a small MLP (:data:`MLP_PROTOCOL`). A test subclasses it and sets
``method`` and ``overrides`` (``ipc``, ``protocol_overrides`` and the margin over random where they differ)."""

from __future__ import annotations

from typing import Any, ClassVar

from distill_core.testing import MethodContract

__all__ = ["MLP_PROTOCOL", "DigitsContract"]

#: a quick evaluation for contract tests: 2 MLPs, 60 epochs, SGD 0.05, batches of 64
MLP_PROTOCOL: dict[str, Any] = {"model": "mlp", "epochs": 60, "lr": 0.05, "batch_size": 64, "n_models": 2}


class DigitsContract(MethodContract):
    """:class:`~distill_core.testing.MethodContract` on digits at 2 images per class, evaluated with
    :data:`MLP_PROTOCOL` (needs scikit-learn)."""

    dataset: ClassVar[str] = "digits"
    ipc: ClassVar[int] = 2
    protocol_overrides: ClassVar[dict[str, Any]] = MLP_PROTOCOL
