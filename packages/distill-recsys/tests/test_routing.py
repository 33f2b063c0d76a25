"""Which modality reads a ``csv:`` dataset: distill-recsys and distill-text both take ``csv:PATH``, so each claims
a file by its first line (the any-modality baselines such as ``random`` resolve the modality from the claims)."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.errors import UnknownNameError
from distill_core.registry import list_modalities, modality_for_dataset
from distill_recsys.datasets import csv_header_kind
from distill_recsys.modality import RecsysModality


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("content", "kind", "claimed"), [
    ("user,item,rating\nu1,i1,5\n", "header", True),
    ("\ufeffUser;Item\n1;2\n", "header", True),
    ("\n3\t4\n3\t5\n", "ids", True),
    ("text,label\nhello there,pos\n", "text", False),
    ("label,id,text\n0,1,hi\n", "text", False),
    ("sentence,label\nhi,0\n", "other", True),  # neither modality's header: the loader names the expected one
    ("", "unreadable", True),
    (b"\x00\x01\x02binary", "unreadable", True),
])
def test_recsys_claims_a_csv_by_its_first_line(tmp_path: Path, content: str | bytes, kind: str,
                                                claimed: bool) -> None:
    path = _write(tmp_path / "data.csv", content)
    assert csv_header_kind(path) == kind
    assert RecsysModality().claims(f"csv:{path}") is claimed


def test_recsys_claims_never_raise_and_keep_its_other_specs(tmp_path: Path) -> None:
    modality = RecsysModality()
    text = _write(tmp_path / "t.csv", "text,label\nhello,0\n")
    assert not modality.claims(f"csv:{text}?L=16")  # distill-text's options after '?'
    assert modality.claims(f"csv:{tmp_path / 'missing.csv'}")  # the loader reports the missing file
    assert modality.claims(f"csv:{tmp_path}")  # a folder
    assert modality.claims("csv:bad\x00path")
    assert all(modality.claims(s) for s in ("ml-1m", "ml-100k", "ml-100k:x.whl", "sparse:x.npz", f"tsv:{text}"))
    assert not modality.claims("jsonl:x.jsonl") and not modality.claims("cifar10")


def test_interaction_csv_routes_to_recsys_and_text_csv_does_not(tmp_path: Path) -> None:
    inter = _write(tmp_path / "inter.csv", "user,item\n" + "".join(f"{u},{i}\n" for u in range(3) for i in range(4)))
    assert modality_for_dataset(f"csv:{inter}").name == "recsys"
    text = _write(tmp_path / "texts.csv", "text,label\n" + "".join(f"text {i},{i % 2}\n" for i in range(6)))
    assert not RecsysModality().claims(f"csv:{text}")
    if "text" in list_modalities():
        assert modality_for_dataset(f"csv:{text}").name == "text"
    else:  # the recsys tox env has no distill-text: no modality reads the file
        with pytest.raises(UnknownNameError):
            modality_for_dataset(f"csv:{text}")
