"""What each rank of test_distributed_text runs (a module of its own so that spawned processes import it)."""

from __future__ import annotations

from typing import Any

from distill_core.data import Budget, RealData
from distill_core.distributed import comm_stats
from distill_core.runner import distill

#: text-GM with two matching rounds per step (the learner trained between them) and text-DM, on the mean-pooled
#: learner, 2 sequences per class
OPTIONS = {"text-gm": {"steps": 3, "model": "meanpool", "batch_real": 16, "outer_loop": 2, "inner_loop": 1,
                       "lr_summary": 100.0},
           "text-dm": {"steps": 3, "model": "meanpool", "batch_real": 16, "lr_summary": 10.0}}


def run(data: RealData) -> dict[str, Any]:
    """text-GM and text-DM on ``data`` (loaded once by the test): the summaries, the losses, the bytes
    all-reduced."""
    rows: dict[str, Any] = {}
    for name, overrides in OPTIONS.items():
        comm_stats().reset()
        outcome = distill(name, dataset=data.name, budget=Budget(ipc=2), seed=1, data=data, progress=False,
                          evaluate=False, overrides=dict(overrides))
        summary = outcome.artifact.summary
        rows[name] = {"x": summary.x.flatten().tolist(), "losses": outcome.run.losses, "bytes": comm_stats().bytes,
                      "numel": summary.x.numel()}
    return rows
