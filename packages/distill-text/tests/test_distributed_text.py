"""text-GM and text-DM with their classes shared over two gloo processes equal the one-process runs: every rank
draws every class's real batch from the step's generator, computes the loss of its classes, and the summary's
gradient is summed over the ranks before each update."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

from distill_core.testing import spawn_ranks
from distill_text.data import load_text_data

HERE = Path(__file__).resolve().parent


def test_text_gm_and_dm_on_two_processes_equal_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   spec: str) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    import _distributed_text as job

    data = load_text_data(spec, progress=False)
    single = job.run(data)
    rows = spawn_ranks(functools.partial(job.run, data), tmp_path)
    for name, options in job.OPTIONS.items():
        updates = options["steps"] * options.get("outer_loop", 1)
        assert single[name]["bytes"] == 0 and single[name]["losses"][-1] != single[name]["losses"][0]
        for row in rows:
            torch.testing.assert_close(torch.tensor(row[name]["x"]), torch.tensor(single[name]["x"]), rtol=1e-4,
                                       atol=1e-5)
            torch.testing.assert_close(torch.tensor(row[name]["losses"]), torch.tensor(single[name]["losses"]),
                                       rtol=1e-4, atol=1e-7)
            # each update all-reduced the summary's gradient (float32) and the loss (one float64)
            assert row[name]["bytes"] == updates * (4 * row[name]["numel"] + 8)
        assert rows[0][name]["x"] == rows[1][name]["x"]
    sys.modules.pop("_distributed_text", None)
