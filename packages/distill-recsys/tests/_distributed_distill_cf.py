"""What each rank of test_distributed_distill_cf runs (a module of its own so that spawned processes import it)."""

from __future__ import annotations

from typing import Any

from distill_core.data import Budget
from distill_core.distributed import comm_stats
from distill_core.runner import distill
from distill_recsys.data import InteractionData

#: a user batch of 90 of the 240 users (45 per rank), drawn anew every step; λ picked before the first step and
#: validated again only at the end. A re-pick between steps is a discrete choice on a tiny validation split: where
#: two λ score within float rounding of each other (measured here at step 3: 1e-5 vs 1e-3) the two-process run may
#: pick the other one, after which the runs differ by more than rounding (both ranks always agree)
OPTIONS = {"steps": 6, "num_per_user": 5, "validate_every": 100, "lr_summary": 0.1, "sparse_k": -1,
           "select_metric": "nDCG@10", "batch_users": 90, "user_chunk": 32}
BUDGET = 6


def run(data: InteractionData) -> dict[str, Any]:
    """Distill-CF on ``data`` (handed to the ranks by the test): the saved summary, the losses and what was
    all-reduced."""
    comm_stats().reset()
    outcome = distill("distill-cf", dataset="csv:unused", budget=Budget(total=BUDGET), seed=3, data=data,
                      progress=False, evaluate=False, overrides=dict(OPTIONS), modality_name="recsys")
    summary = outcome.artifact.summary
    return {"summary": summary.to_csr().toarray().flatten().tolist(), "losses": outcome.run.losses,
            "bytes": comm_stats().bytes, "numel": BUDGET * data.n_items}
