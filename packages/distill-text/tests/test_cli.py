"""The CLI end to end on the toy set: run, eval in a fresh call, show (nearest tokens), export (JSON lines)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill_core import Budget, distill, load_artifact
from distill_core.cli import main
from distill_core.errors import DataValidationError
from distill_core.evaluation import EvalProtocol, evaluate_summary
from distill_text.modality import TextModality


def test_run_eval_show_export(tiny_spec: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "art"
    code = main(["run", "dd-text", "--dataset", tiny_spec, "--ipc", "1", "--steps", "2", "--no-progress", "--models",
                 "2", "--set", "learner=\"meanpool\"", "--set", "inner_steps=3", "--set", "batch_real=16", "--out",
                 str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["protocol"]["use_learned_lr"] and report["labels"] == "soft"
    assert (out / "summary.txt").is_file()
    assert main(["eval", str(out), "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["accuracy_mean"] == report["accuracy_mean"]
    assert main(["show", str(out), "--out", str(tmp_path / "show.txt")]) == 0
    text = (tmp_path / "show.txt").read_text()
    assert "neg=" in text and "pos=" in text and "[CLS]" in text
    assert main(["export", str(out), "--out", str(tmp_path / "s.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {r["class_name"] for r in rows} == {"neg", "pos"}
    assert all(abs(sum(r["soft_label"]) - 1) < 1e-3 and len(r["tokens"]) == r["length"] for r in rows)


def test_nearest_tokens_of_a_real_subset_are_its_own_tokens(tiny_spec: str, tmp_path: Path) -> None:
    outcome = distill("random", dataset=tiny_spec, budget=Budget(ipc=2), evaluate=False, progress=False,
                      out_dir=tmp_path / "rnd")
    art = load_artifact(tmp_path / "rnd")
    rows = TextModality().export(art.summary, art.info, tmp_path / "rnd.jsonl").read_text().splitlines()
    texts = [json.loads(r)["text"] for r in rows]
    train_texts = {json.loads(line)["text"] for line in Path(tiny_spec[6:].split("?")[0]).read_text().splitlines()}
    assert all(t in train_texts for t in texts)  # the uncased tokenizer round-trips these lowercase texts
    assert all(min(json.loads(r)["cosine"]) > 0.999 for r in rows)
    assert outcome.artifact.summary.budget == 4


def test_summary_from_another_model_is_refused(tiny_spec: str) -> None:
    outcome = distill("random", dataset=tiny_spec, budget=Budget(ipc=1), evaluate=False, progress=False)
    summary = outcome.artifact.summary
    summary.model_id = "0000000000000000"
    with pytest.raises(DataValidationError, match="embedded with"):
        evaluate_summary(summary, outcome.data, modality=TextModality(), protocol=EvalProtocol(model="meanpool"))
