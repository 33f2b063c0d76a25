"""Planetoid downloads through distill_core.download, fed local files (a file:// mirror): no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from distill_core.download import ChecksumError, DatasetUnavailableError, get_dataset_spec
from distill_graph.data import ROOT_ENV, load_graph


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.delenv("DISTILL_DATA_MIRROR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.mark.parametrize("name, folder", [("cora", "Cora"), ("citeseer", "CiteSeer"), ("pubmed", "PubMed")])
def test_offline_message_names_layout_and_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None,
                                               name: str, folder: str) -> None:
    monkeypatch.setenv("DISTILL_DOWNLOAD", "0")
    with pytest.raises(DatasetUnavailableError) as info:
        load_graph(name)
    message = str(info.value)
    assert f"{folder}/raw/ind.{name}." in message and "--root" in message and ROOT_ENV in message
    assert str(tmp_path / "xdg" / "distill" / "planetoid") in message


def test_every_planetoid_file_has_the_official_url() -> None:
    for name in ("cora", "citeseer", "pubmed"):
        spec = get_dataset_spec(name)
        assert len(spec.files) == 8
        assert all(f.urls[0].startswith("https://github.com/kimiyoung/planetoid/raw/master/data/ind.")
                   for f in spec.files)
    assert all(f.sha256 for n in ("cora", "citeseer") for f in get_dataset_spec(n).files)


def test_cora_downloads_from_a_mirror_of_the_official_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            no_env: None, planetoid_root: str) -> None:
    """The shared copies are the official bytes: served as a mirror, they pass the published sha256s."""
    mirror = tmp_path / "mirror"
    (mirror / "cora").mkdir(parents=True)
    for src in (Path(planetoid_root) / "Cora" / "raw").glob("ind.cora.*"):
        (mirror / "cora" / src.name).write_bytes(src.read_bytes())
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    monkeypatch.setenv("DISTILL_DATA_MIRROR", mirror.as_uri())
    graph = load_graph("cora", root=str(tmp_path / "data"))
    assert graph.num_nodes == 2708 and int(graph.train_mask.sum()) == 140
    assert len(list((tmp_path / "data" / "Cora" / "raw").iterdir())) == 8
    # a tampered mirror file fails its checksum and leaves nothing behind
    (mirror / "cora" / "ind.cora.y").write_bytes(b"planted")
    (tmp_path / "data" / "Cora" / "raw" / "ind.cora.y").unlink()
    with pytest.raises(ChecksumError, match="94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1"):
        load_graph("cora", root=str(tmp_path / "data"))
    assert sorted(p.name for p in (tmp_path / "data" / "Cora" / "raw").iterdir() if p.name.startswith(".")) == []
