"""A rank that dies mid-run (``os._exit`` on rank 1 after step 3 of 6, checkpoints every 2 steps) leaves the last
checkpoint and no artifact, not even a partial one; ``--resume`` on two processes again (rank 0 reads the
checkpoint and sends its state to rank 1) ends with the summary of an uninterrupted two-process run."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from distill_core.checkpoint import CHECKPOINT, load_state
from distill_core.data import RealData
from distill_core.files import LOCK_NAME
from distill_core.testing import spawn_ranks

HERE = Path(__file__).resolve().parent


def test_killed_rank_then_resume_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       digits: RealData) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    import _distributed_resume as job

    # rank 1's exit (code 17), or rank 0's error from the collective its peer left, whichever spawn sees first
    with pytest.raises((mp.ProcessExitedException, mp.ProcessRaisedException)):
        spawn_ranks(functools.partial(job.killed, str(tmp_path), digits), tmp_path / "first")
    killed = tmp_path / "killed"
    # only the complete checkpoint of step 2 (and the lock file the kernel released): no manifest, no tensors, no
    # staging folder or temporary file of an artifact or checkpoint in the making
    assert {p.name for p in killed.iterdir()} <= {CHECKPOINT, LOCK_NAME}
    assert load_state(killed / CHECKPOINT)["step"] == job.EVERY
    assert not list((tmp_path / "first" / "results").iterdir())  # neither rank returned

    rows = spawn_ranks(functools.partial(job.resumed, str(tmp_path), digits), tmp_path / "second")
    for row in rows:
        assert row["resumed"]["resumed_from"] == job.EVERY and row["uninterrupted"]["resumed_from"] is None
        # the same computation from the same state: the resumed summary is the uninterrupted one
        torch.testing.assert_close(torch.tensor(row["resumed"]["x"]), torch.tensor(row["uninterrupted"]["x"]),
                                   rtol=0, atol=0)
    assert rows[0]["resumed"]["x"] == rows[1]["resumed"]["x"]
    assert (killed / "manifest.json").is_file()  # rank 0 wrote the artifact once the run completed
    sys.modules.pop("_distributed_resume", None)
