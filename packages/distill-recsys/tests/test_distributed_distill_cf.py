"""Distill-CF with each step's user batch split over two gloo processes equals the one-process run: every rank
draws the same users and Gumbel sample, reconstructs its block of users, and the logits' gradient is summed over
the ranks before each update."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

from distill_core.testing import spawn_ranks
from distill_recsys.data import build_interaction_data

from .conftest import block_interactions

HERE = Path(__file__).resolve().parent


def test_distill_cf_on_two_processes_equals_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    import _distributed_distill_cf as job

    users, items = block_interactions(n_users=240, n_items=60, groups=6, p_in=0.5, p_out=0.02, seed=7)
    data = build_interaction_data("blocks", users, items)
    single = job.run(data)
    rows = spawn_ranks(functools.partial(job.run, data), tmp_path)
    assert single["bytes"] == 0  # one process: nothing is sent
    assert len(set(single["losses"])) == len(single["losses"])  # a new user batch and summary every step
    for row in rows:
        # the ranks' partial sums of the likelihood, then the all-reduce: equal to float32 rounding
        torch.testing.assert_close(torch.tensor(row["losses"]), torch.tensor(single["losses"]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(row["summary"]), torch.tensor(single["summary"]), rtol=1e-4,
                                   atol=1e-5)
        # each step all-reduced the logits' gradient (float32, budget x items) and the loss (one float64)
        assert row["bytes"] == job.OPTIONS["steps"] * (4 * row["numel"] + 8)
    assert rows[0]["summary"] == rows[1]["summary"]  # both ranks hold the same summary
    sys.modules.pop("_distributed_distill_cf", None)
