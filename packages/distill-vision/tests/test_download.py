"""Fashion-MNIST and MNIST through distill_core.download, fed local files (file:// mirror): no network."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from distill_core import download
from distill_core.download import ChecksumError, DatasetUnavailableError
from distill_vision import datasets
from distill_vision.datasets import IDX_NAMES, load


def _idx_files(folder: Path, n: int = 20) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    out = {}
    for name in IDX_NAMES:
        if "images" in name:
            payload = struct.pack(">IIII", 0x803, n, 28, 28) + rng.integers(0, 255, (n, 28, 28), np.uint8).tobytes()
        else:
            payload = struct.pack(">II", 0x801, n) + (np.arange(n) % 10).astype(np.uint8).tobytes()
        out[name + ".gz"] = gzip.compress(payload, mtime=0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in out.items():
        (folder / name).write_bytes(data)
    return out


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("DISTILL_MNIST_ROOT", "DISTILL_FASHION_MNIST_ROOT", "DISTILL_DATA_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(datasets, "FASHION_MNIST_ROOT", str(tmp_path / "no-debian-package"))


@pytest.mark.parametrize("name, env", [("mnist", "DISTILL_MNIST_ROOT"),
                                       ("fashion-mnist", "DISTILL_FASHION_MNIST_ROOT")])
def test_offline_message_names_layout_and_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None,
                                               name: str, env: str) -> None:
    monkeypatch.setenv("DISTILL_DOWNLOAD", "0")
    with pytest.raises(DatasetUnavailableError) as info:
        load(name, root=str(tmp_path / "empty"))
    message = str(info.value)
    assert "--root" in message and env in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "empty") in message and not (tmp_path / "empty").exists()


def test_mnist_download_is_checked_against_the_official_checksums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  no_env: None) -> None:
    _idx_files(tmp_path / "mirror" / "mnist")  # not the official bytes
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    monkeypatch.setenv("DISTILL_DATA_MIRROR", (tmp_path / "mirror").as_uri())
    with pytest.raises(ChecksumError, match="f68b3c2dcbeaaa9fbdd348bbdeb94873"):
        load("mnist", root=str(tmp_path / "data"))
    assert list((tmp_path / "data").rglob("*")) == []


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_downloaded_idx_files_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None, name: str) -> None:
    files = _idx_files(tmp_path / "server")
    spec = download.get_dataset_spec(name)
    local = dataclasses.replace(spec, files=tuple(
        dataclasses.replace(f, urls=((tmp_path / "server" / f.path).as_uri(),), md5=None, size=None,
                            sha256=hashlib.sha256(files[f.path]).hexdigest()) for f in spec.files))
    monkeypatch.setitem(download._REGISTRY, name, local)
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    data = load(name)  # no --root: the user's data folder
    assert data.sample_shape == (1, 28, 28) and len(data.x_train) == 20
    assert sorted(p.name for p in (tmp_path / "xdg" / "distill" / name).iterdir()) == sorted(files)
    monkeypatch.setenv("DISTILL_DOWNLOAD", "0")  # found now: no download needed
    assert len(load(name).x_test) == 20
