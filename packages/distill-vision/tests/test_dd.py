"""DD on scikit-learn digits: the method contract (plain minibatch evaluation), the native learned-lr protocol,
a positive learned learning rate and truncated back-propagation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from distill_core import Budget, DivergenceError, distill, evaluate_summary, get_modality
from distill_core.checkpoint import CHECKPOINT, load_state
from distill_vision.methods.dd import DD, native_protocol
from distill_vision.testing import DigitsContract

torch.set_num_threads(1)  # tiny problems on shared CI machines

FAST = {"model": "mlp", "lr_init": 0.1, "lr_lr": 0.05, "lr_summary": 0.05, "batch_real": 128}


class TestDDContract(DigitsContract):
    method = "dd"
    overrides: ClassVar[dict[str, Any]] = {"steps": 40, **FAST}


def test_learned_lr_is_positive_and_native_protocol_beats_random() -> None:
    out = distill("dd", dataset="digits", budget=Budget(ipc=2), seed=0, evaluate=False, progress=False,
                  overrides={"steps": 40, **FAST})
    summary = out.artifact.summary
    assert summary.lr is not None and float(summary.lr) > 0 and abs(float(summary.lr) - 0.1) > 1e-3
    modality = get_modality("vision")
    native = native_protocol(summary, model="mlp", n_models=2)
    ours = evaluate_summary(summary, out.data, modality=modality, protocol=native).mean
    base = distill("random", dataset="digits", budget=Budget(ipc=2), seed=0, evaluate=False, progress=False,
                   data=out.data).artifact.summary
    # the random subset trained the same way (same steps, the initial lr 0.1 since it learned none)
    rnd = evaluate_summary(base, out.data, modality=modality, protocol=native.with_(lr=0.1)).mean
    assert ours > rnd, (ours, rnd)


def test_truncated_unroll_runs_and_groups_cycle_in_order() -> None:
    out = distill("dd", dataset="digits", budget=Budget(ipc=2), seed=0, evaluate=False, progress=False,
                  overrides={"steps": 6, **FAST, "truncate": 2, "checkpoint": True})
    assert out.run.losses[-1] < out.run.losses[0]
    groups = DD().groups(out.artifact.summary)
    labels = out.artifact.summary.labels
    assert len(groups) == 2 and all(torch.equal(labels[g], torch.arange(10)) for g in groups)


def test_a_nan_meta_gradient_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    # an absurd inner learning rate makes the unrolled weights, hence the outer loss and meta-gradient, blow up
    with pytest.raises(DivergenceError, match="rolled back"):
        distill("dd", dataset="digits", budget=Budget(ipc=1), seed=0, evaluate=False, progress=False,
                out_dir=tmp_path, overrides={"steps": 5, **FAST, "lr_init": 1e30})
    state = load_state(tmp_path / CHECKPOINT)
    assert state["step"] == 0 and torch.isfinite(state["summary"]["x"]).all()
