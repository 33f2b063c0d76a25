"""``distill(...)``: method name to a saved, evaluated artifact; a fresh process reproduces the stored accuracy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from distill_core import Budget, DataValidationError, EvalProtocol, distill, evaluate_artifact, load_artifact
from distill_core.runner import build_method, load_config_file

TOY_DM = "test_toy_dm"
FAST = {"epochs": 20, "n_models": 2}


def test_outcome_and_manifest(tmp_path: Path) -> None:
    outcome = distill(TOY_DM, dataset="blobs", budget=Budget(ipc=2), seed=4, overrides={"steps": 4},
                      out_dir=tmp_path, progress=False, protocol_overrides=FAST)
    assert outcome.run.steps == 4 and outcome.out_dir == tmp_path and outcome.picture is None
    assert outcome.evaluation is not None and outcome.evaluation.protocol.epochs == 20
    assert set(outcome.timings) == {"load_s", "prepare_s", "distill_s"}
    art = load_artifact(tmp_path)
    assert (art.method, art.modality, art.seed, art.steps) == (TOY_DM, "toy", 4, 4)
    assert art.config == outcome.artifact.config and art.config["steps"] == 4
    assert art.dataset["name"] == "blobs" and art.dataset["n_train"] == 120
    assert art.extra["budget_request"] == {"ipc": 2, "total": None, "ratio": None}
    assert art.extra["budget_per_class"] == [2, 2, 2] and art.extra["selection"] == "final"
    assert art.extra["final_loss"] == outcome.run.losses[-1] and art.extra["resumed_from"] is None
    stored = art.evaluations[0]
    assert stored["seed"] == 4 and stored["protocol"]["n_models"] == 2 and len(stored["accuracies"]) == 2


def test_evaluate_artifact_reproduces_stored_accuracy(tmp_path: Path) -> None:
    distill(TOY_DM, dataset="blobs", budget=Budget(ipc=2), seed=2, overrides={"steps": 3}, out_dir=tmp_path,
            progress=False, protocol_overrides=FAST)
    art = load_artifact(tmp_path)
    torch.manual_seed(12345)  # the global RNG state must not matter
    result, data = evaluate_artifact(art)
    assert round(result.mean, 3) == art.evaluations[0]["accuracy_mean"]
    assert result.accuracies == pytest.approx(art.evaluations[0]["accuracies"], abs=1e-3)
    assert data.name == "blobs"
    other, _ = evaluate_artifact(art, protocol=EvalProtocol(model="linear", epochs=5, n_models=1))
    assert other.protocol.model == "linear" and len(other.accuracies) == 1


def test_fresh_process_reproduces_stored_accuracy(tmp_path: Path) -> None:
    distill(TOY_DM, dataset="blobs", budget=Budget(ipc=2), seed=1, overrides={"steps": 3}, out_dir=tmp_path,
            progress=False, protocol_overrides=FAST)
    stored = load_artifact(tmp_path).evaluations[0]
    code = ("import sys, torch; torch.set_num_threads(1); import distill_core.testing; "
            "from distill_core.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "eval", str(tmp_path), "--json"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["accuracy_mean"] == stored["accuracy_mean"]
    assert report["accuracies"] == stored["accuracies"]


def test_overrides_and_config_file(tmp_path: Path) -> None:
    method = build_method(TOY_DM, {"lr_summary": 0.2})
    assert method.config.lr_summary == 0.2 and method.config.steps == 20 and method.name == TOY_DM
    path = tmp_path / "c.json"
    for text, fragment in (("[1, 2]", "must hold a JSON object"), ("{oops", "not valid JSON")):
        path.write_text(text)
        with pytest.raises(DataValidationError, match=fragment):
            load_config_file(path)
    with pytest.raises(DataValidationError, match="does not exist"):
        load_config_file(tmp_path / "missing.json")
    path.write_text('{"width": 8}')
    assert load_config_file(path) == {"width": 8}


def test_no_out_dir_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    outcome = distill(TOY_DM, dataset="blobs", budget=Budget(total=5), overrides={"steps": 2}, progress=False,
                      evaluate=False)
    assert outcome.evaluation is None and outcome.out_dir is None and outcome.artifact.evaluations == []
    assert outcome.artifact.summary.budget == 5
    assert list(tmp_path.iterdir()) == []
