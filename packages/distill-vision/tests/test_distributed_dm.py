"""DM with its classes shared over two gloo processes equals the one-process run: per-class draws are keyed by
(seed, step, class), each rank computes its classes' loss and the summary's gradient is summed over the ranks."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

from distill_core.testing import spawn_ranks

HERE = Path(__file__).resolve().parent


def test_dm_on_two_processes_equals_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    import _distributed_dm

    single = _distributed_dm.run()
    rows = spawn_ranks(functools.partial(_distributed_dm.run), tmp_path)
    for row in rows:
        # float sums in another order: equal to float32 rounding, not bit for bit
        torch.testing.assert_close(torch.tensor(row["x"]), torch.tensor(single["x"]), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.tensor(row["losses"]), torch.tensor(single["losses"]), rtol=1e-4, atol=1e-6)
    assert rows[0]["x"] == rows[1]["x"]  # both ranks hold the same summary
    assert single["losses"][-1] < single["losses"][0]
    sys.modules.pop("_distributed_dm", None)
