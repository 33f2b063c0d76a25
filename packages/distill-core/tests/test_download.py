"""The dataset fetcher, fed local files through file:// URLs: no test touches the network."""

from __future__ import annotations

import hashlib
import io
import logging
import tarfile
import zipfile
from pathlib import Path

import pytest

from distill_core.download import (
    ChecksumError,
    DatasetSpec,
    DatasetUnavailableError,
    RemoteFile,
    download_allowed,
    download_progress,
    ensure_dataset,
    extract_archive,
    fetch_file,
    get_dataset_spec,
    register_dataset,
)
from distill_core.errors import DataValidationError, DistillError, UnknownNameError

PAYLOAD = b"official bytes\n" * 1000


def _source(tmp_path: Path, name: str = "data.bin", payload: bytes = PAYLOAD) -> Path:
    src = tmp_path / "server" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(payload)
    return src


def _remote(src: Path, *, sha256: str | None = None, path: str = "data.bin", **kw: object) -> RemoteFile:
    return RemoteFile(path, (src.as_uri(),), sha256=sha256, **kw)  # type: ignore[arg-type]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def test_good_checksum_puts_the_file_in_place_atomically(tmp_path: Path) -> None:
    src = _source(tmp_path)
    dest = tmp_path / "data"
    remote = _remote(src, sha256=hashlib.sha256(PAYLOAD).hexdigest(), size=len(PAYLOAD))
    out = fetch_file("toyset", remote, dest, progress=False)
    assert out == dest / "data.bin"
    assert out.read_bytes() == PAYLOAD
    assert _leftovers(dest) == []  # no temporary file left


def test_md5_is_used_when_only_md5_is_published(tmp_path: Path) -> None:
    src = _source(tmp_path)
    remote = _remote(src, md5=hashlib.md5(PAYLOAD).hexdigest())
    assert fetch_file("toyset", remote, tmp_path / "d", progress=False).read_bytes() == PAYLOAD
    bad = _remote(src, md5="0" * 32, path="other.bin")
    with pytest.raises(ChecksumError, match="md5"):
        fetch_file("toyset", bad, tmp_path / "d", progress=False)


def test_bad_checksum_is_an_error_naming_both_hashes_and_leaves_nothing(tmp_path: Path) -> None:
    src = _source(tmp_path)
    dest = tmp_path / "data"
    remote = _remote(src, sha256="ab" * 32)
    with pytest.raises(ChecksumError) as info:
        fetch_file("toyset", remote, dest, progress=False)
    assert isinstance(info.value, DistillError)
    assert "ab" * 32 in str(info.value) and hashlib.sha256(PAYLOAD).hexdigest() in str(info.value)
    assert list(dest.rglob("*")) == []


def test_wrong_size_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path)
    with pytest.raises(ChecksumError, match="bytes"):
        fetch_file("toyset", _remote(src, size=3), tmp_path / "d", progress=False)
    assert list((tmp_path / "d").rglob("*")) == []


def test_unverified_file_is_kept_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = _source(tmp_path)
    with caplog.at_level(logging.WARNING, logger="distill_core.download"):
        fetch_file("toyset", _remote(src, checksum_source="not published"), tmp_path / "d", progress=False)
    assert "unverified" in caplog.text


def test_unreachable_url_names_the_layout_and_root(tmp_path: Path) -> None:
    spec = DatasetSpec("toy-offline", (RemoteFile("a/b.bin", ((tmp_path / "nowhere.bin").as_uri(),)),),
                       layout="a/b.bin (the toy file)", licence="none", source="nowhere",
                       root_hint="--root DIR (or $TOY_ROOT)")
    with pytest.raises(DatasetUnavailableError) as info:
        fetch_file(spec.name, spec.files[0], tmp_path / "d", progress=False, spec=spec)
    message = str(info.value)
    assert "toy-offline" in message and "a/b.bin (the toy file)" in message and "--root" in message
    assert "$TOY_ROOT" in message and str(tmp_path / "d") in message
    assert isinstance(info.value, DataValidationError)  # the CLI's one-line error path
    assert _leftovers(tmp_path / "d") == []


def test_mirror_is_tried_before_the_official_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "toy-mirror").mkdir(parents=True)
    (mirror / "toy-mirror" / "b.bin").write_bytes(PAYLOAD)
    remote = RemoteFile("x/b.bin", ((tmp_path / "official-gone.bin").as_uri(),),
                        sha256=hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setenv("DISTILL_DATA_MIRROR", mirror.as_uri())
    assert fetch_file("toy-mirror", remote, tmp_path / "d", progress=False).read_bytes() == PAYLOAD


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    src = _source(tmp_path)
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "data.bin").write_bytes(b"mine")
    # unverified spec: the user's file is kept as it is
    assert fetch_file("toyset", _remote(src), dest, progress=False).read_bytes() == b"mine"
    # a checksum it fails: an error, and the file is still kept
    with pytest.raises(ChecksumError, match="kept"):
        fetch_file("toyset", _remote(src, sha256=hashlib.sha256(PAYLOAD).hexdigest()), dest, progress=False)
    assert (dest / "data.bin").read_bytes() == b"mine"


def test_policy_env_var_ci_and_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILL_DOWNLOAD", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert download_allowed()[0] is False  # inside pytest (PYTEST_CURRENT_TEST)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    assert download_allowed()[0] is True
    monkeypatch.setenv("CI", "true")
    assert download_allowed()[0] is False
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    assert download_allowed()[0] is True
    monkeypatch.setenv("DISTILL_DOWNLOAD", "0")
    monkeypatch.delenv("CI")
    allowed, why = download_allowed()
    assert allowed is False and "DISTILL_DOWNLOAD=0" in why
    monkeypatch.setenv("DISTILL_DOWNLOAD", "maybe")
    assert download_allowed()[0] is False


def _spec(tmp_path: Path, name: str, payload: bytes = PAYLOAD) -> DatasetSpec:
    src = _source(tmp_path, f"{name}.bin", payload)
    return register_dataset(DatasetSpec(name, (RemoteFile("raw/f.bin", (src.as_uri(),),
                                                          sha256=hashlib.sha256(payload).hexdigest()),),
                                        layout="raw/f.bin", licence="test", source="here"), replace=True)


def test_ensure_dataset_respects_the_off_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(tmp_path, "toy-ensure")
    monkeypatch.setenv("DISTILL_DOWNLOAD", "0")
    with pytest.raises(DatasetUnavailableError, match="DISTILL_DOWNLOAD=0") as info:
        ensure_dataset(spec.name, tmp_path / "d")
    assert "raw/f.bin" in str(info.value) and "--root" in str(info.value)
    assert not (tmp_path / "d").exists()
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    assert ensure_dataset(spec.name, tmp_path / "d", progress=False) == tmp_path / "d"
    assert (tmp_path / "d" / "raw" / "f.bin").read_bytes() == PAYLOAD
    monkeypatch.setenv("DISTILL_DOWNLOAD", "0")  # complete: nothing to do, no error
    assert ensure_dataset(spec.name, tmp_path / "d") == tmp_path / "d"


def test_registry_refuses_a_second_different_spec_and_names_choices(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "toy-registry")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DatasetSpec(spec.name, spec.files, layout="other", licence="", source=""))
    assert register_dataset(spec) is spec  # the same spec again is fine (re-imports)
    with pytest.raises(UnknownNameError, match="toy-registry"):
        get_dataset_spec("no-such-set")


def test_remote_file_paths_must_stay_inside(tmp_path: Path) -> None:
    for bad in ("../x", "/etc/passwd", "a/../../x", ""):
        with pytest.raises(ValueError):
            RemoteFile(bad, ("file:///x",))


# -- archives -----------------------------------------------------------------------------------------------------
def _tar(path: Path, members: dict[str, bytes], *, link: tuple[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type = tarfile.SYMTYPE
            info.linkname = link[1]
            tar.addfile(info)
    return path


def test_tar_is_extracted_and_existing_files_kept(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", {"set/train.txt": b"train", "set/test.txt": b"test"})
    dest = tmp_path / "out"
    (dest / "set").mkdir(parents=True)
    (dest / "set" / "test.txt").write_bytes(b"mine")
    extract_archive(archive, dest)
    assert (dest / "set" / "train.txt").read_bytes() == b"train"
    assert (dest / "set" / "test.txt").read_bytes() == b"mine"
    assert _leftovers(dest) == []


@pytest.mark.parametrize("name", ["../evil.txt", "set/../../evil.txt", "/tmp/evil.txt"])
def test_tar_with_an_escaping_member_is_refused(tmp_path: Path, name: str) -> None:
    archive = _tar(tmp_path / "a.tar.gz", {"set/ok.txt": b"ok", name: b"evil"})
    dest = tmp_path / "out"
    with pytest.raises(DataValidationError, match="outside"):
        extract_archive(archive, dest)
    assert not (tmp_path / "evil.txt").exists()
    assert list(dest.rglob("*")) == []  # checked before anything is written


def test_tar_with_a_link_is_refused(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "a.tar.gz", {"set/ok.txt": b"ok"}, link=("set/link", "/etc/passwd"))
    with pytest.raises(DataValidationError, match="link"):
        extract_archive(archive, tmp_path / "out")
    assert list((tmp_path / "out").rglob("*")) == []


def test_zip_members_checked_and_selected(tmp_path: Path) -> None:
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("ml/ratings.dat", "1::2::3::4\n")
        zf.writestr("ml/README", "readme")
    extract_archive(good, tmp_path / "out", members=["ml/ratings.dat"])
    assert (tmp_path / "out" / "ml" / "ratings.dat").is_file()
    assert not (tmp_path / "out" / "ml" / "README").exists()
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataValidationError, match="outside"):
        extract_archive(evil, tmp_path / "out2")
    assert not (tmp_path / "evil.txt").exists()
    linked = tmp_path / "link.zip"
    with zipfile.ZipFile(linked, "w") as zf:
        info = zipfile.ZipInfo("ml/link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(DataValidationError, match="link"):
        extract_archive(linked, tmp_path / "out3")


def test_ensure_dataset_unpacks_a_verified_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _tar(tmp_path / "set.tar.gz", {"set/a.txt": b"a"})
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    spec = register_dataset(DatasetSpec("toy-archive", (RemoteFile("set.tar.gz", (archive.as_uri(),), sha256=digest,
                                                                   extract=True, provides=("set/a.txt",)),),
                                        layout="set/a.txt", licence="test", source="here"), replace=True)
    monkeypatch.setenv("DISTILL_DOWNLOAD", "1")
    ensure_dataset(spec.name, tmp_path / "d", progress=False)
    assert (tmp_path / "d" / "set" / "a.txt").read_bytes() == b"a"


def test_the_runs_progress_setting_reaches_the_download_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DISTILL_PROGRESS", "1")
    src = _source(tmp_path)
    with download_progress(False):  # what `distill run --no-progress` sets around loading the dataset
        fetch_file("toyset", _remote(src, path="a.bin"), tmp_path / "d")
    assert "toyset: a.bin" not in capsys.readouterr().err
    with download_progress(True):
        fetch_file("toyset", _remote(src, path="b.bin"), tmp_path / "d")
    assert "toyset: b.bin" in capsys.readouterr().err
