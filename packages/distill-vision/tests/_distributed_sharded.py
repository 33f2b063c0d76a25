"""What each rank of test_distributed_sharded runs (a module of its own so that spawned processes can import it)."""

from __future__ import annotations

from typing import Any

from distill_core.data import Budget, RealData
from distill_core.distributed import comm_stats
from distill_core.runner import distill

#: DSA (DC with Siamese augmentation) with two image updates per step and inner training between them
DSA = {"steps": 2, "outer_loop": 2, "inner_loop": 2, "batch_real": 16, "batch_train": 8,
       "model_kwargs": {"width": 8}}
#: KIP with the analytic FC NTK and 100 class-balanced targets (50 rows per rank)
KIP = {"steps": 3, "kernel": "fc_ntk", "target_batch": 100}
#: RFAD with two small random ConvNets, two target batches of 60 rows (30 per rank) and the Platt scale learned
RFAD = {"steps": 3, "n_models": 2, "width": 16, "depth": 2, "target_batch": 60, "n_batches": 2, "block_size": 16}


def run(data: RealData) -> dict[str, Any]:
    """DSA, KIP and RFAD on ``data`` (digits, loaded once by the test and handed to the ranks) at 2 images per
    class: the summaries, the losses and what was all-reduced."""
    rows: dict[str, Any] = {}
    for name, overrides in (("dsa", DSA), ("kip", KIP), ("rfad", RFAD)):
        comm_stats().reset()
        outcome = distill(name, dataset="digits", budget=Budget(ipc=2), seed=2, progress=False, evaluate=False,
                          overrides=dict(overrides), data=data)
        # every optimized tensor is summed: the images, the label values where the summary holds them (RFAD's
        # regression targets: not learned here, a zero gradient) and RFAD's Platt log-scale
        summary = outcome.artifact.summary
        labels = 0 if summary.label_values is None else summary.label_values.numel()
        rows[name] = {"x": summary.x.flatten().tolist(), "losses": outcome.run.losses, "bytes": comm_stats().bytes,
                      "numel": summary.x.numel() + labels + (name == "rfad")}
    return rows
