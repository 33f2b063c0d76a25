"""What each rank of test_distributed_dm runs (a module of its own so that spawned processes can import it)."""

from __future__ import annotations

from typing import Any

from distill_core.data import Budget
from distill_core.runner import distill


def run() -> dict[str, Any]:
    """DM on digits, classes shared over the ranks; the summary, the recorded losses and the evaluation."""
    outcome = distill("dm", dataset="digits", budget=Budget(ipc=2), seed=1, progress=False,
                      overrides={"steps": 5, "batch_real": 32, "model_kwargs": {"width": 16}, "lr_summary": 10.0},
                      protocol_overrides={"n_models": 2, "epochs": 20})
    assert outcome.evaluation is not None
    return {"x": outcome.artifact.summary.x.flatten().tolist(), "losses": outcome.run.losses,
            "accs": outcome.evaluation.accuracies}
