"""Test helpers for vision methods, shipped with the package so that a method written outside this repository runs
the same contract: :class:`DigitsContract` is :class:`~distill_core.testing.MethodContract` on scikit-learn's
digits (seconds on a CPU), evaluated with a small MLP (:data:`MLP_PROTOCOL`). A test subclasses it and sets
``method`` and ``overrides`` (``ipc``, ``protocol_overrides`` and the margin over random where they differ)."""

from __future__ import annotations

from typing import Any, ClassVar

from distill_core.testing import MethodContract

__all__ = ["CONVNET_PROTOCOL", "MLP_PROTOCOL", "QUICK_OBJECTIVES", "ConvNetDigitsContract", "DigitsContract"]

#: a quick evaluation for contract tests: 2 MLPs, 60 epochs, SGD 0.05, batches of 64
MLP_PROTOCOL: dict[str, Any] = {"model": "mlp", "epochs": 60, "lr": 0.05, "batch_size": 64, "n_models": 2}

#: the matching methods' contract evaluation: 2 ConvNets 32 wide, 100 epochs
CONVNET_PROTOCOL: dict[str, Any] = {"model_kwargs": {"width": 32}, "epochs": 100, "n_models": 2}


#: each objective's quick settings on digits (as its contract test has them; DC, DSA, DCC and CAFE with one matching
#: step and one inner epoch per iteration, as DC's table has them for IPC 1; DCC without its warm-up): for tests that
#: run every objective
QUICK_OBJECTIVES: dict[str, dict[str, Any]] = {
    "dc": {"model_kwargs": {"width": 32}, "batch_real": 64, "outer_loop": 1, "inner_loop": 1},
    "dsa": {"model_kwargs": {"width": 32}, "batch_real": 64, "outer_loop": 1, "inner_loop": 1},
    # a 32-wide net has a 4x smaller embedding than the default 128-wide one: DM's image lr is scaled up to match
    "dm": {"model_kwargs": {"width": 32}, "batch_real": 64, "lr_summary": 10.0},
    "dcc": {"model_kwargs": {"width": 32}, "batch_real": 64, "outer_loop": 1, "inner_loop": 1, "outer_warmup": 0},
    "cafe": {"model_kwargs": {"width": 32}, "batch_real": 64, "outer_loop": 1, "inner_loop": 1, "init": "real"},
    "kip": {"target_batch": 200},
    "rfad": {"n_models": 2, "width": 32, "target_batch": 200, "n_batches": 1, "lr_summary": 0.01},
    "frepo": {"model_kwargs": {"width": 32}, "num_models": 3, "max_online_updates": 4, "target_batch": 256,
              "lr_summary": 0.01, "lr_model": 0.003},
    "dd": {"model": "mlp", "lr_init": 0.1, "lr_lr": 0.05, "lr_summary": 0.05, "batch_real": 128},
}


class DigitsContract(MethodContract):
    """:class:`~distill_core.testing.MethodContract` on digits at 2 images per class, evaluated with
    :data:`MLP_PROTOCOL` (needs scikit-learn)."""

    dataset: ClassVar[str] = "digits"
    ipc: ClassVar[int] = 2
    protocol_overrides: ClassVar[dict[str, Any]] = MLP_PROTOCOL


class ConvNetDigitsContract(MethodContract):
    """:class:`~distill_core.testing.MethodContract` of a matching method on digits at 1 image per class: 20 steps
    of the method's :data:`QUICK_OBJECTIVES` settings, evaluated with :data:`CONVNET_PROTOCOL`, 5 points over random.
    A test sets ``method`` (and ``overrides`` where it differs from ``{"steps": 20, **QUICK_OBJECTIVES[method]}``)."""

    dataset: ClassVar[str] = "digits"
    ipc: ClassVar[int] = 1
    protocol_overrides: ClassVar[dict[str, Any]] = CONVNET_PROTOCOL
    beats_random_margin: ClassVar[float] = 5.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        method = cls.__dict__.get("method")
        if method in QUICK_OBJECTIVES and "overrides" not in cls.__dict__:
            cls.overrides = {"steps": 20, **QUICK_OBJECTIVES[method]}
