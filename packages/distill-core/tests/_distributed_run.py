"""What each rank of test_distributed runs (a module of its own so that spawned processes can import it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from distill_core.data import Budget
from distill_core.distributed import broadcast_tensors, shard, world
from distill_core.registry import list_methods
from distill_core.runner import distill

TOY_DM = "test_toy_dm"
PROTOCOL = {"n_models": 5, "epochs": 5}


def run(out_dir: str | None) -> dict[str, Any]:
    """A short toy DM run on blobs with a 5-model evaluation, plus this rank's view of the process group."""
    if TOY_DM not in list_methods():  # a spawned process has not read conftest
        import conftest  # noqa: F401

    probe = torch.full((3,), float(world()[0] + 7))
    broadcast_tensors([probe])
    outcome = distill(TOY_DM, dataset="blobs", budget=Budget(ipc=2), seed=3, out_dir=Path(out_dir) if out_dir
                      else None, progress=False, overrides={"steps": 4}, protocol_overrides=PROTOCOL)
    assert outcome.evaluation is not None
    return {"world": list(world()), "shard": shard(5), "probe": probe.tolist(),
            "accs": outcome.evaluation.accuracies}
