"""Expert trajectories over two gloo ranks (``torch.multiprocessing``, as ``torchrun`` would start them): the
missing experts are spread over the ranks, both write into one store, and the store equals a one-process build."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import torch

from distill_core.testing import spawn_ranks

HERE = Path(__file__).resolve().parent


def _two_ranks(tmp_path: Path, name: str, root: Path) -> list[dict]:  # type: ignore[type-arg]
    import _distributed_experts

    return spawn_ranks(functools.partial(_distributed_experts.build, str(root)), tmp_path / name)


def test_two_ranks_build_the_one_process_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))  # spawned ranks import _distributed_experts from here
    import _distributed_experts
    from _distributed_experts import PROTOCOL

    from distill_core.experts import open_store
    from distill_core.registry import get_modality
    from distill_core.testing import make_blobs

    single = _distributed_experts.build(str(tmp_path / "one"))
    rows = _two_ranks(tmp_path, "fresh", tmp_path / "two")
    assert [r["mine"] for r in rows] == [[0, 2], [1]]  # expert i on rank i mod 2
    assert all(r["held"] == [2, 2, 2] for r in rows)  # each rank sees every rank's experts after the build
    assert all(r["trained"] == single["trained"] == 6 for r in rows)
    data, modality = make_blobs(), get_modality("toy")
    one = open_store(tmp_path / "one", data=data, modality=modality, protocol=PROTOCOL)
    two = open_store(tmp_path / "two", data=data, modality=modality, protocol=PROTOCOL)
    for k in range(3):
        for epoch in range(3):
            a, b = one.load(k, epoch), two.load(k, epoch)
            assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)  # seeded by expert, not rank

    # an existing expert is kept; only the missing ones are shared out
    _distributed_experts.build(str(tmp_path / "three"), n=1)
    rows = _two_ranks(tmp_path, "resume", tmp_path / "three")
    assert [r["mine"] for r in rows] == [[1], [2]] and all(r["trained"] == 4 for r in rows)
    three = open_store(tmp_path / "three", data=data, modality=modality, protocol=PROTOCOL)
    assert torch.equal(three.load(2, 2)["3.weight"], one.load(2, 2)["3.weight"])
    sys.modules.pop("_distributed_experts", None)
