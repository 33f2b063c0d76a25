from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file

from distill_core.artifact import load_artifact
from distill_core.cli import main
from distill_core.errors import ArtifactError, DataValidationError
from distill_recsys.summary import SparseUserSummary

SETS = ["--set", "steps=4", "--set", "num_per_user=5", "--set", "validate_every=2", "--set", "sparse_k=6",
        "--set", "select_metric=\"nDCG@10\""]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_run_eval_export_round_trip(tmp_path, tiny_csv, capsys):
    art = tmp_path / "art"
    code = main(["run", "distill-cf", "--dataset", f"csv:{tiny_csv}", "--budget", "5", "--out", str(art),
                 "--no-progress", "--models", "1", "--eval-model", "infinite-ae", "--json", *SETS])
    assert code == 0
    report = _last_json(capsys)
    assert report["total"] == 5 and report["budget"] == [5]
    assert set(report["metrics"]) == {"infinite-ae"} and "nDCG@10" in report["metrics"]["infinite-ae"]["mean"]
    loaded = load_artifact(art)
    assert isinstance(loaded.summary, SparseUserSummary) and loaded.summary.budget == 5
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["summary"]["shape"] == [5, 36] and manifest["extra"]["resolved_users"] == 5
    assert set(manifest["tensors"]) >= {"indptr", "indices", "values"}
    # the headline number is the primary learner's test nDCG@10, named so (not an accuracy)
    assert report["metric"] == "nDCG@10" and manifest["evaluations"][0]["metric"] == "nDCG@10"
    assert report["value_mean"] == manifest["evaluations"][0]["accuracy_mean"]
    # a fresh evaluation with the stored protocol reproduces the stored number
    assert main(["eval", str(art), "--json"]) == 0
    again = _last_json(capsys)
    assert again["metric"] == "nDCG@10"
    assert again["value_mean"] == pytest.approx(report["value_mean"], abs=1e-3)
    # exports: CSV with the dataset's own item ids, and a scipy CSR matrix equal to the summary
    assert main(["export", str(art), "--out", str(tmp_path / "s.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == loaded.summary.nnz and all(r["item"].startswith("i") for r in rows)
    assert main(["export", str(art), "--out", str(tmp_path / "s.npz")]) == 0
    assert (sp.load_npz(tmp_path / "s.npz") != loaded.summary.to_csr()).nnz == 0


def test_sparse_summary_round_trip_and_corruption(tmp_path):
    from distill_core.artifact import Artifact

    m = sp.csr_matrix(np.array([[0, 0.5, 0, 1.0], [1.0, 0, 0, 0]], dtype=np.float32))
    summary = SparseUserSummary(matrix=m, item_ids=np.array([10, 20, 30, 40]))
    Artifact(summary=summary, method="distill-cf", modality="recsys", dataset={"name": "x"}).save(tmp_path / "a")
    back = load_artifact(tmp_path / "a").summary
    assert (back.to_csr() != m).nnz == 0 and back.item_ids.tolist() == [10, 20, 30, 40] and back.weighted
    tensors = load_file(str(tmp_path / "a" / "tensors.safetensors"))
    meta = json.loads((tmp_path / "a" / "manifest.json").read_text())["summary"]
    from distill_core.preprocessing import Preprocessing

    bad = dict(tensors, indices=torch.tensor([1, 3, 9]))  # out of range for 4 items
    with pytest.raises(ArtifactError, match="outside"):
        SparseUserSummary.from_tensors(bad, meta, Preprocessing())
    with pytest.raises(ArtifactError, match="do not fit its shape"):
        SparseUserSummary.from_tensors(dict(tensors, indptr=torch.tensor([0, 3])), meta, Preprocessing())
    with pytest.raises(DataValidationError, match="without any interaction"):
        SparseUserSummary(matrix=sp.csr_matrix((2, 4), dtype=np.float32))


def test_cli_bad_inputs_exit_2(tmp_path, tiny_csv, capsys):
    assert main(["run", "distill-cf", "--dataset", f"csv:{tiny_csv}", "--budget", "500", "--no-progress"]) == 2
    assert "larger than the 48 real users" in capsys.readouterr().err
    assert main(["run", "random-users", "--dataset", f"csv:{tiny_csv}", "--ipc", "2", "--no-progress"]) == 2
    assert "no classes" in capsys.readouterr().err
    assert main(["run", "distill-cf", "--dataset", f"csv:{tmp_path / 'nope.csv'}", "--budget", "2"]) == 2
    assert "does not exist" in capsys.readouterr().err
