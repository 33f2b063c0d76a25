"""Property-based fuzzing of the recommender loaders (``csv:`` / ``tsv:`` interaction lists, ``sparse:`` scipy
``.npz`` matrices, ``ml-100k:`` recbole files) through the path the CLI takes: :meth:`RecsysModality.claims` and
:meth:`RecsysModality.load_dataset`.

Whatever the bytes, a claim is a plain bool, loading either returns consistent data or raises a
:class:`~distill_core.errors.DistillError` with a message (never another exception), and nothing is written outside
the input folder. ``DISTILL_FUZZ_PROFILE=thorough`` runs many more cases.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from hypothesis import example, given
from hypothesis import strategies as st

from distill_core.errors import DistillError
from distill_core.fuzz import claim_and_load, load_profile, sandbox
from distill_recsys.data import InteractionData
from distill_recsys.modality import RecsysModality

load_profile()

MODALITY = RecsysModality()


def _valid_csv() -> bytes:
    """A small interaction file that loads: 6 users x 5 items with ratings."""
    rows = [f"u{u},i{i},{1 + (u + i) % 5}" for u in range(6) for i in range(5) if (u + i) % 3]
    return ("user,item,rating\n" + "\n".join(rows) + "\n").encode()


def _valid_npz() -> bytes:
    matrix = sp.random(8, 6, density=0.6, random_state=0, format="csr")
    buffer = io.BytesIO()
    sp.save_npz(buffer, matrix)
    return buffer.getvalue()


def _valid_inter() -> bytes:
    rows = [f"{u}\t{i}\t{1 + (u * i) % 5}\t0" for u in range(1, 6) for i in range(1, 7)]
    return ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "\n".join(rows) + "\n").encode()


VALID = {"csv": _valid_csv(), "csv.gz": gzip.compress(_valid_csv(), mtime=0), "npz": _valid_npz(),
         "inter": _valid_inter()}
PREFIX = {"csv": "csv:", "csv.gz": "csv:", "tsv": "tsv:", "npz": "sparse:", "inter": "ml-100k:", "whl": "ml-100k:"}


def _load(folder: Path, suffix: str, content: bytes) -> object:
    """Write ``content`` as ``data.<suffix>``, ask for the claim and load it through the modality."""
    path = folder / f"data.{suffix}"
    path.write_bytes(content)
    return claim_and_load(MODALITY, PREFIX[suffix] + str(path), root=str(folder), check=_check)


def _check(data: object) -> None:
    """Loaded data is consistent: three binary CSR splits over the same users and items, training data present."""
    assert isinstance(data, InteractionData)
    assert data.n_users > 0 and data.n_items > 0 and data.train.nnz > 0
    for matrix in (data.train, data.val, data.test):
        assert matrix.shape == (data.n_users, data.n_items)
        assert np.all(matrix.data == 1.0)
    assert len(data.user_ids) == data.n_users and len(data.item_ids) == data.n_items


CELLS = st.one_of(
    st.integers(-3, 40).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "", " ", "1e400", str(2**64), str(-(2**63)), "1.5", "²", "u1",
                     "i2", "user", "item", "rating", "text", "label", '"a,b"', '"open', "\r", "-0"]),
    st.text(max_size=6),
)
HEADERS = st.one_of(
    st.none(),
    st.sampled_from([("user", "item"), ("user", "item", "rating"), ("USER", " item "), ("text", "label")]),
    st.lists(st.sampled_from(["user", "item", "rating", "text", "label", "id", "", "timestamp"]), max_size=4),
)


GRID = [[str(u), str(i)] for u in range(4) for i in range(4)]


@given(header=HEADERS, rows=st.lists(st.lists(CELLS, max_size=4), max_size=25),
       delimiter=st.sampled_from([",", "\t", ";"]), suffix=st.sampled_from(["csv", "tsv"]))
@example(header=("text", "label"), rows=GRID, delimiter=",", suffix="csv")  # the header became an interaction
@example(header=None, rows=[["0", "0"], ["0", "²"]], delimiter=",", suffix="csv")  # int('²') raised ValueError
@example(header=("user", "item"), rows=[*GRID, [str(2**64), "1"]], delimiter=",", suffix="csv")  # int64 overflow
def test_fuzz_interaction_files_with_random_columns_and_cells(header: tuple[str, ...] | list[str] | None,
                                                              rows: list[list[str]], delimiter: str,
                                                              suffix: str) -> None:
    lines = ([delimiter.join(header)] if header is not None else []) + [delimiter.join(r) for r in rows]
    content = "\n".join(lines).encode("utf-8", "surrogatepass")
    with sandbox() as folder:
        result = _load(folder, suffix, content)
    if header is not None and "".join(header).strip():
        # a first line other than the interaction header is refused, never read as an interaction
        if tuple(c.strip().lower() for c in header) not in (("user", "item"), ("user", "item", "rating")):
            assert isinstance(result, DistillError), header


@given(rows=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 5),
                               st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**30))),
                     min_size=1, max_size=40))
def test_fuzz_ratings_nan_negative_and_huge_are_refused_or_loaded(rows: list[tuple[int, int, float]]) -> None:
    content = ("user,item,rating\n" + "".join(f"{u},{i},{r}\n" for u, i, r in rows)).encode()
    with sandbox() as folder:
        result = _load(folder, "csv", content)
    ratings = np.array([float(r) for _, _, r in rows])
    if not np.isfinite(ratings).all() or (ratings < 0).any():
        assert isinstance(result, DistillError) and "rating" in str(result)


@given(content=st.binary(max_size=400), suffix=st.sampled_from(sorted(PREFIX)))
def test_fuzz_random_bytes(content: bytes, suffix: str) -> None:
    with sandbox() as folder:
        _load(folder, suffix, content)


@given(data=st.data(), kind=st.sampled_from(sorted(VALID)))
def test_fuzz_truncated_and_corrupted_valid_files(data: st.DataObject, kind: str) -> None:
    valid = VALID[kind]
    cut = data.draw(st.integers(0, len(valid)), label="cut")
    content = bytearray(valid[:cut])
    if content and data.draw(st.booleans(), label="flip a byte"):
        content[data.draw(st.integers(0, len(content) - 1), label="at")] = data.draw(st.integers(0, 255),
                                                                                     label="byte")
    with sandbox() as folder:
        result = _load(folder, kind, bytes(content))
    if cut == len(valid) and content == valid:
        assert not isinstance(result, DistillError), result


INTS = st.lists(st.one_of(st.integers(-3, 12), st.sampled_from([2**31, 2**40, -(2**40)])), max_size=12)
ARRAYS = {
    "format": st.sampled_from([b"csr", b"csc", b"coo", b"dia", b"bsr", b"lil", b"xyz", b""]).map(np.array),
    "shape": st.lists(st.one_of(st.integers(-2, 10), st.sampled_from([2**40, 2**62])), max_size=3).map(
        lambda v: np.array(v, dtype=np.int64)),
    "data": st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5)),
                     max_size=12).map(lambda v: np.array(v, dtype=np.float64)),
    "indices": INTS.map(lambda v: np.array(v, dtype=np.int64)),
    "indptr": INTS.map(lambda v: np.array(v, dtype=np.int64)),
    "row": INTS.map(lambda v: np.array(v, dtype=np.int64)),
    "col": INTS.map(lambda v: np.array(v, dtype=np.int64)),
    "offsets": INTS.map(lambda v: np.array(v, dtype=np.int64)),
}


@given(arrays=st.fixed_dictionaries({}, optional=ARRAYS))
@example(arrays={"format": np.array(b"lil")})  # scipy raised NotImplementedError
@example(arrays={"format": np.array(b"coo"), "shape": np.array([2**40, 2**40]), "row": np.arange(9) % 3,
                 "col": np.arange(9), "data": np.ones(9)})  # a huge shape must not allocate per row
def test_fuzz_npz_archives_with_random_keys_and_arrays(arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with sandbox() as folder:
        _load(folder, "npz", buffer.getvalue())


@given(member=st.one_of(st.binary(max_size=200), st.just(VALID["inter"][:90])),
       name=st.sampled_from(["recbole/dataset_example/ml-100k/ml-100k.inter", "other.txt"]))
def test_fuzz_recbole_wheels(member: bytes, name: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(name, member)
    with sandbox() as folder:
        _load(folder, "whl", buffer.getvalue())
