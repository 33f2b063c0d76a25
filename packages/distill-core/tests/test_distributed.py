"""Two gloo processes (``torch.multiprocessing``, as ``torchrun`` would start them) against one process: the
evaluation's models are spread over ranks with the same accuracies, rank 0's tensors reach every rank, and only
rank 0 writes."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import pytest
import torch

from distill_core.distributed import gather_indexed, shard, world
from distill_core.testing import spawn_ranks

HERE = Path(__file__).resolve().parent


def test_two_processes_evaluate_like_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))  # spawned ranks import _distributed_run (and conftest) from here
    import _distributed_run

    single = _distributed_run.run(None)
    rows = spawn_ranks(functools.partial(_distributed_run.run, str(tmp_path / "out")), tmp_path)
    assert [row["world"] for row in rows] == [[0, 2], [1, 2]]
    assert [row["shard"] for row in rows] == [[0, 2, 4], [1, 3]]
    assert all(row["probe"] == [7.0, 7.0, 7.0] for row in rows)  # rank 0's tensor everywhere
    assert all(row["accs"] == single["accs"] for row in rows)  # models seeded by index, not rank: exactly equal
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "manifest.json" in written and "tensors.safetensors" in written  # rank 0 wrote; rank 1 took no lock
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["evaluations"][0]["accuracies"] == [round(a, 3) for a in single["accs"]]  # stored rounded
    sys.modules.pop("_distributed_run", None)


def test_one_process_is_the_identity() -> None:
    assert world() == (0, 1) and shard(3) == [0, 1, 2]
    assert gather_indexed({1: 0.5, 0: 0.25}, 2) == [0.25, 0.5]
    with pytest.raises(RuntimeError, match=r"indices \[2\] were computed by no rank"):
        gather_indexed({0: 1.0, 1: 1.0}, 3)


def test_class_generator_takes_large_seeds() -> None:
    from types import SimpleNamespace

    from distill_core.method import StepContext

    ctx = SimpleNamespace(seed=10**10, step=10**6)  # unreduced, the key would pass 2**64 (manual_seed refuses it)
    draws = [torch.randint(0, 10**6, (3,), generator=StepContext.class_generator(ctx, c)).tolist()  # type: ignore[arg-type]
             for c in (0, 1, 0)]
    assert draws[0] == draws[2] != draws[1]


def test_close_group_leaves_only_the_group_it_joined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI closes the group ``init_from_env`` joined before exiting (a gloo group alive at exit may abort the
    process); a group the caller started is the caller's."""
    import distill_core.distributed as dist

    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        dist.close_group()
        assert torch.distributed.is_initialized()  # not ours: left alone
        monkeypatch.setattr(dist, "_STARTED_HERE", True)
        dist.close_group()
        assert not torch.distributed.is_initialized() and not dist._STARTED_HERE
        dist.close_group()  # a second close is a no-op
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
