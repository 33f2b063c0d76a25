"""Property-based fuzzing of the text loaders (``jsonl:`` and ``csv:`` files, plain or gzipped, with or without a
``test.*`` file beside ``train.*``) through the path the CLI takes: :meth:`TextModality.claims` and
:meth:`TextModality.load_dataset`, tokenizer and embedding included (the installed small encoder is loaded once).

Whatever the bytes, a claim is a plain bool, loading either returns consistent data or raises a
:class:`~distill_core.errors.DistillError` with a message (never another exception), and nothing is written outside
the input folder (the embedding cache lives in the session's ``DISTILL_TEXT_CACHE``, see conftest.py).
``DISTILL_FUZZ_PROFILE=thorough`` runs many more cases.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from distill_core.data import RealData
from distill_core.errors import DistillError
from distill_core.fuzz import claim_and_load, load_profile, only_distill_errors, sandbox
from distill_text.data import _is_number
from distill_text.modality import TextModality
from distill_text.testing import make_sentences

load_profile()

MODALITY = TextModality()
L = 8
ROWS = make_sentences(4, seed=5, length=3)
VALID = {
    "jsonl": "".join(json.dumps(r) + "\n" for r in ROWS).encode(),
    "csv": ("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in ROWS)).encode(),
}


@pytest.fixture(scope="module", autouse=True)
def _encoder_loaded() -> None:
    """Load the encoder once, outside the sandboxes (the first load reads the model folder)."""
    from distill_text.encoder import load_encoder

    load_encoder()


def _load(folder: Path, kind: str, train: bytes, test: bytes | None = None, *, gz: bool = False) -> object:
    """Write ``train.<kind>`` (and ``test.<kind>``), ask for the claim and load the spec through the modality."""
    suffix = f".{kind}.gz" if gz else f".{kind}"
    path = folder / f"train{suffix}"
    path.write_bytes(gzip.compress(train, mtime=0) if gz else train)
    if test is not None:
        (folder / f"test{suffix}").write_bytes(gzip.compress(test, mtime=0) if gz else test)
    return claim_and_load(MODALITY, f"{kind}:{path}?L={L}", root=str(folder), check=_check)


def _check(data: object) -> None:
    """Loaded data: (L, d + 1) samples with a 0/1 mask channel, labels 0..K-1 with K >= 2, finite values."""
    assert isinstance(data, RealData)
    assert data.num_classes >= 2 and len(data.class_names) == data.num_classes
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.shape[0] == y.shape[0] > 0 and x.shape[1] == L and bool(torch.isfinite(x).all())
        assert set(x[..., -1].unique().tolist()) <= {0.0, 1.0}
        assert int(y.min()) >= 0 and int(y.max()) < data.num_classes


@given(content=st.binary(max_size=300), kind=st.sampled_from(["jsonl", "csv"]), gz=st.booleans(),
       with_test=st.booleans())
def test_fuzz_random_bytes(content: bytes, kind: str, gz: bool, with_test: bool) -> None:
    with sandbox() as folder:
        _load(folder, kind, VALID[kind] if with_test else content, content if with_test else None, gz=gz)


@given(data=st.data(), kind=st.sampled_from(["jsonl", "csv"]), gz=st.booleans())
@example(data=None, kind="csv", gz=False)  # a cut-off last row: int(None) raised TypeError
def test_fuzz_truncated_and_corrupted_valid_files(data: st.DataObject | None, kind: str, gz: bool) -> None:
    valid = VALID[kind]
    if data is None:
        content = bytearray(valid.rstrip(b"\n").rsplit(b",", 1)[0])
    else:
        content = bytearray(valid[: data.draw(st.integers(0, len(valid)), label="cut")])
        if content and data.draw(st.booleans(), label="flip a byte"):
            content[data.draw(st.integers(0, len(content) - 1), label="at")] = data.draw(st.integers(0, 255),
                                                                                         label="byte")
    stored = gzip.compress(bytes(content), mtime=0) if gz else bytes(content)
    if gz and data is not None and data.draw(st.booleans(), label="cut the gzip stream"):
        stored = stored[: data.draw(st.integers(0, len(stored)), label="gzip cut")]
    with sandbox() as folder:
        path = folder / (f"train.{kind}.gz" if gz else f"train.{kind}")
        path.write_bytes(stored)
        spec = f"{kind}:{path}?L={L}"
        assert isinstance(MODALITY.claims(spec), bool)
        result = only_distill_errors(MODALITY.load_dataset, spec, root=str(folder))
        if not isinstance(result, DistillError):
            _check(result)
    if bytes(content) == valid and (not gz or stored == gzip.compress(valid, mtime=0)):
        assert not isinstance(result, DistillError), result


SCALARS = st.one_of(
    st.integers(-2, 3), st.sampled_from([2**31, 10**18, 10**30, -(10**30)]), st.floats(), st.booleans(), st.none(),
    st.text(max_size=12), st.sampled_from(["pos", "neg", "", " ", "nan", "0", "1"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))


@given(rows=st.lists(st.one_of(
    st.fixed_dictionaries({"text": st.one_of(st.text(min_size=1, max_size=20), VALUES), "label": VALUES}),
    st.dictionaries(st.sampled_from(["text", "label", "id", "Text"]), VALUES, max_size=3),
    VALUES), min_size=0, max_size=20))
@example(rows=[{"text": f"t {i}", "label": 10**5 if i == 5 else i % 2} for i in range(6)])  # 100,001 classes
@example(rows=[{"text": f"t {i}", "label": math.nan if i == 5 else i % 2} for i in range(6)])
def test_fuzz_jsonl_rows_with_random_keys_and_values(rows: list[Any]) -> None:
    content = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8", "surrogatepass")
    with sandbox() as folder:
        result = _load(folder, "jsonl", content)
    labels = [r["label"] for r in rows if isinstance(r, dict) and "label" in r]
    bad = [v for v in labels if not ((isinstance(v, str) and v.strip()) or type(v) is int)]
    ints = {v for v in labels if type(v) is int}
    if bad or (ints and (min(ints) < 0 or max(ints) >= len(ints))):
        # a float / NaN / bool / null / empty label, or integer labels with gaps (10**18 would ask for 10**18
        # classes) is refused, never loaded
        assert isinstance(result, DistillError), labels


CELLS = st.one_of(
    st.text(max_size=12), st.integers(-2, 3).map(str),
    st.sampled_from(["nan", "NaN", "inf", "", " ", "1.5", str(10**30), "-1", "pos", "neg", '"a,b"', '"open', "\x00"]),
)


@given(header=st.lists(st.sampled_from(["text", "label", "id", "", "Text", "user"]), max_size=4),
       rows=st.lists(st.lists(CELLS, max_size=4), max_size=20), with_test=st.booleans())
@example(header=["text", "label"], rows=[[f"t {i}", "nan" if i == 5 else str(i % 2)] for i in range(6)],
         with_test=True)  # a NaN label became a class named 'nan'
def test_fuzz_csv_with_random_columns_and_cells(header: list[str], rows: list[list[str]], with_test: bool) -> None:
    content = "\n".join([",".join(header), *(",".join(r) for r in rows)]).encode("utf-8", "surrogatepass")
    with sandbox() as folder:
        result = _load(folder, "csv", content, content if with_test else None)
    if not {"text", "label"} <= set(header):
        assert isinstance(result, DistillError)
    elif all(len(r) == len(header) and all(re.fullmatch(r'[^,"\r\n\x00]*', c) for c in r) for r in rows):
        labels = [r[header.index("label")].strip() for r in rows if any(c.strip() for c in r)]
        integer = [bool(re.fullmatch(r"[-+]?[0-9]+", v)) for v in labels]
        numeric = [_is_number(v) for v in labels]
        if not all(labels) or any(n and not i for n, i in zip(numeric, integer)) or 0 < sum(integer) < len(labels):
            # an empty, NaN or fractional label, or integers mixed with class names, is refused
            assert isinstance(result, DistillError), labels



