"""Which modality reads a ``csv:`` dataset: distill-text and distill-recsys both take ``csv:PATH``, so each claims
a file by its first line; the any-modality baselines (``random``, ``herding``, ``kcenter``) follow the claims."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import distill_text.data as text_data
from distill_core.cli import main
from distill_core.registry import modality_for_dataset
from distill_text.modality import TextModality
from distill_text.testing import make_sentences


def _text_csv(path: Path, n_per_class: int = 6) -> Path:
    rows = make_sentences(n_per_class, seed=3, length=4)
    path.write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(("content", "interactions"), [
    ("user,item,rating\nu1,i1,5\n", True),
    ("\ufeffUSER;item\nu1;i1\n", True),
    ("\n3\t4\n3\t5\n", True),
    ("text,label\nhello,pos\n", False),
    ("sentence,label\nhello,pos\n", False),  # neither modality's header: the text loader names the columns
    ("", False),
])
def test_text_claims_a_csv_unless_it_starts_like_interactions(tmp_path: Path, content: str,
                                                              interactions: bool) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    assert text_data.starts_like_interactions(path) is interactions
    assert TextModality().claims(f"csv:{path}?L=16") is not interactions


def test_text_csv_routes_to_text_and_claims_never_raise(tmp_path: Path) -> None:
    path = _text_csv(tmp_path / "texts.csv")
    assert modality_for_dataset(f"csv:{path}").name == "text"
    assert modality_for_dataset(f"csv:{path}?L=8").name == "text"
    modality = TextModality()
    inter = tmp_path / "inter.csv"
    inter.write_text("user,item\n" + "".join(f"{u},{i}\n" for u in range(3) for i in range(4)))
    assert not modality.claims(f"csv:{inter}")
    assert modality.claims(f"csv:{tmp_path / 'missing.csv'}")  # the loader reports the missing file
    assert modality.claims(f"csv:{tmp_path}") and modality.claims("csv:bad\x00path") and modality.claims("csv:")
    assert modality.claims("jsonl:x.jsonl") and modality.claims("trec?L=8")
    assert not modality.claims("tsv:x.tsv") and not modality.claims("ml-1m")


def test_cli_random_on_a_text_csv_runs_on_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _text_csv(tmp_path / "texts.csv")
    out = tmp_path / "o"
    code = main(["run", "random", "--dataset", f"csv:{path}?L=8", "--ipc", "1", "--no-eval", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads(next(out.glob("*.json")).read_text())
    assert manifest["modality"] == "text" and manifest["method"] == "random"
