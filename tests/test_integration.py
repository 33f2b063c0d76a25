"""Cross-package integration: the CLI end to end in fresh processes, every installed modality registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill_core.registry import list_methods, list_modalities

FAST_DM = ["--steps", "5", "--set", 'model_kwargs={"width": 16}', "--set", "batch_real=32", "--eval-epochs", "20",
           "--models", "2", "--eval-model", "convnet", "--no-progress"]


def _distill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "distill_core.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_every_modality_and_its_methods_are_registered() -> None:
    assert {"vision", "graph", "text", "recsys"} <= set(list_modalities())
    assert {"dm", "dc", "dsa", "kip", "rfad", "frepo", "dd", "random", "herding", "kcenter"} <= set(list_methods())


def test_run_then_eval_in_a_fresh_process_reproduces_the_stored_accuracy(tmp_path: Path) -> None:
    out = tmp_path / "dm-digits"
    run = _distill("run", "dm", "--dataset", "digits", "--ipc", "1", "--out", str(out), "--json", *FAST_DM,
                   cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["total"] == 10 and report["protocol"]["epochs"] == 20
    assert (out / "manifest.json").is_file() and (out / "tensors.safetensors").is_file()
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = _distill("eval", str(out), "--json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    evaluated = json.loads(again.stdout.strip().splitlines()[-1])
    assert evaluated["accuracy_mean"] == pytest.approx(report["accuracy_mean"], abs=1e-3)
    assert evaluated["protocol"] == report["protocol"]


def test_show_redraws_the_grid(tmp_path: Path) -> None:
    out = tmp_path / "rnd"
    assert _distill("run", "random", "--dataset", "digits", "--ipc", "2", "--out", str(out), "--no-eval",
                    cwd=tmp_path).returncode == 0
    picture = tmp_path / "grid.png"
    shown = _distill("show", str(out), "--out", str(picture), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "dmx", "--dataset", "digits", "--ipc", "1"], "Could not resolve method 'dmx'"),
        (["run", "dm", "--dataset", "imagenet", "--ipc", "1"], "imagenet"),
        (["run", "dm", "--dataset", "digits", "--ipc", "1000"], "--ipc"),
        (["run", "dm", "--dataset", "npz:/nonexistent/data.npz", "--ipc", "1"], "not found"),
        (["run", "dm", "--dataset", "digits", "--ipc", "1", "--set", "lr_imgs=1"], "lr_summary"),
        (["eval", "/nonexistent/artifact"], "no such artifact directory"),
    ],
)
def test_bad_input_exits_2_with_the_fix(tmp_path: Path, args: list[str], message: str) -> None:
    result = _distill(*args, cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_artifact_is_refused_and_left_untouched(tmp_path: Path) -> None:
    out = tmp_path / "a"
    assert _distill("run", "random", "--dataset", "digits", "--ipc", "1", "--out", str(out), "--no-eval",
                    cwd=tmp_path).returncode == 0
    tensors = out / "tensors.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:50])  # truncated
    before = tensors.read_bytes()
    result = _distill("eval", str(out), cwd=tmp_path)
    assert result.returncode == 2 and "tensors.safetensors" in result.stderr
    assert tensors.read_bytes() == before
