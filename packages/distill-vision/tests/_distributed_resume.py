"""What each rank of test_distributed_resume runs (a module of its own so that spawned processes can import it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill_core.data import Budget, RealData
from distill_core.runner import distill
from distill_core.testing import ExitAt

STEPS = 6
EVERY = 2  # checkpoints after steps 2, 4 and 6
KILL_AFTER = 3  # rank 1 dies once 3 steps are done: the last checkpoint is step 2's


def _dm(out: Path, data: RealData, *, resume: bool = False, kill: bool = False) -> dict[str, Any]:
    outcome = distill("dm", dataset="digits", data=data, budget=Budget(ipc=2), seed=4, out_dir=out, resume=resume,
                      progress=False, evaluate=False, checkpoint_every=EVERY,
                      callbacks=[ExitAt(KILL_AFTER, rank=1)] if kill else [],
                      overrides={"steps": STEPS, "batch_real": 32, "model_kwargs": {"width": 16}, "lr_summary": 10.0})
    return {"x": outcome.artifact.summary.x.flatten().tolist(), "resumed_from": outcome.run.resumed_from}


def killed(root: str, data: RealData) -> dict[str, Any]:
    """A checkpointed 2-process run whose rank 1 dies after step 3 (never returns on rank 1)."""
    return _dm(Path(root, "killed"), data, kill=True)


def resumed(root: str, data: RealData) -> dict[str, Any]:
    """An uninterrupted run, then ``--resume`` of the killed one."""
    return {"uninterrupted": _dm(Path(root, "whole"), data),
            "resumed": _dm(Path(root, "killed"), data, resume=True)}
