"""``distill run ... --nproc 2`` launches torchrun itself: its artifact is the one ``torchrun --nproc-per-node 2 -m
distill_core.cli run ...`` writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from distill_core.artifact import load_artifact

ARGS = ["run", "dm", "--dataset", "digits", "--ipc", "2", "--steps", "2", "--seed", "3", "--set", "batch_real=16",
        "--set", 'model_kwargs={"width": 8}', "--models", "2", "--eval-epochs", "2", "--no-progress", "--json"]


def test_nproc_equals_torchrun(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISTILL_DOWNLOAD": "0"}
    ours = subprocess.run([sys.executable, "-m", "distill_core.cli", *ARGS, "--nproc", "2", "--out",
                           str(tmp_path / "nproc")], capture_output=True, text=True, env=env, timeout=300)
    assert ours.returncode == 0, ours.stderr[-3000:]
    assert "rank 1 of 2" in ours.stderr  # the second process joined the group
    report = json.loads(ours.stdout.strip().splitlines()[-1])  # rank 0's --json line is the last one
    assert report["steps"] == 2 and report["artifact"] == str(tmp_path / "nproc")
    theirs = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                             "-m", "distill_core.cli", *ARGS, "--out", str(tmp_path / "torchrun")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert theirs.returncode == 0, theirs.stderr[-3000:]
    a, b = load_artifact(tmp_path / "nproc"), load_artifact(tmp_path / "torchrun")
    assert torch.equal(a.summary.x, b.summary.x)
    assert a.evaluations[0]["accuracies"] == b.evaluations[0]["accuracies"]
