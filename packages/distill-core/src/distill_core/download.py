"""Fetching named datasets from their official sources into the user's data folder (standard library only).

What torchvision and PyG do, with the checks a file from the network needs: a named dataset that a loader does not
find is downloaded (when allowed, see :func:`download_allowed`) from the URLs of its :class:`DatasetSpec` into the
folder the loader reads, streamed to a temporary file in that folder with a progress bar, its checksum (sha256, or
md5 where only that is published) verified, and only then renamed into place. Nothing is ever overwritten: a file
already there is kept (and checked when its checksum is known); a mismatch names both hashes and leaves nothing
behind. Archives are unpacked only after these checks, member by member: no absolute path, no ``..``, no link, no
device, nothing outside the target folder.

Without a network (or with downloads off) the error names the dataset, the folder layout to provide and ``--root``.

When downloads happen:
    ``DISTILL_DOWNLOAD=1`` (or ``true``/``yes``/``on``) allows them, ``DISTILL_DOWNLOAD=0`` (``false``/``no``/``off``)
    forbids them. Unset, they are allowed except in CI (``CI`` set to anything but ``0``/``false``) and inside a
    pytest run (``PYTEST_CURRENT_TEST``), so that a test suite never reaches for the network by accident.

``DISTILL_DATA_MIRROR=URL`` puts a mirror before every official URL: file ``F`` of dataset ``D`` is first looked
for at ``URL/D/F`` (basename of ``F``); ``file://`` URLs work, which is how the tests feed the fetcher local files.
The checksums are the same whatever the URL.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import http.client
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import DataValidationError, UnknownNameError

__all__ = [
    "ChecksumError",
    "DatasetSpec",
    "DatasetUnavailableError",
    "RemoteFile",
    "download_allowed",
    "download_progress",
    "ensure_dataset",
    "extract_archive",
    "fetch_file",
    "file_digest",
    "get_dataset_spec",
    "list_dataset_specs",
    "offline_message",
    "register_dataset",
]

logger = logging.getLogger(__name__)

ENV_DOWNLOAD = "DISTILL_DOWNLOAD"
ENV_MIRROR = "DISTILL_DATA_MIRROR"
ENV_PROGRESS = "DISTILL_PROGRESS"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_CHUNK = 1 << 20
USER_AGENT = "distill-dataset-fetcher (python urllib)"


class DatasetUnavailableError(DataValidationError):
    """A named dataset is not on disk and could not be (or may not be) downloaded; the message says what to
    provide, where, and how to point distill at it (``--root``)."""


class ChecksumError(DataValidationError):
    """A downloaded (or already present) file does not have the published checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Args:
        path: where the file lands, relative to the dataset folder (POSIX, no ``..``), e.g. ``"Cora/raw/ind.cora.x"``.
        urls: the official URL first, then mirrors; tried in order until one answers.
        sha256: the published or verified sha256 (lower-case hex), when known.
        md5: the md5, used only when no sha256 is known (some sources publish only md5).
        size: the size in bytes, when known (progress total and an early check).
        checksum_source: where the checksum comes from (kept next to it so a reader can check it).
        extract: unpack this archive (``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``, ``.gz``) into the dataset folder
            after it is verified; the archive itself is kept (it is what the checksum vouches for).
        members: when extracting, only these archive members (all when empty).
        provides: the files that the dataset is complete with once this file is in place (defaults to ``path``;
            an archive names what it unpacks to, so that it is not downloaded again when those are there).
    """

    path: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    checksum_source: str = ""
    extract: bool = False
    members: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_relative(self.path, "RemoteFile.path")
        for name in self.provides:
            _check_relative(name, "RemoteFile.provides")
        if not self.urls:
            raise ValueError(f"RemoteFile {self.path!r} needs at least one URL")

    @property
    def checksum(self) -> tuple[str, str] | None:
        """``(algorithm, hex digest)``: sha256 when known, else md5, else ``None`` (unverified)."""
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        return None

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.provides or (self.path,)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset a modality can fetch.

    Args:
        name: the name users type (``--dataset NAME``).
        files: what to download.
        layout: the folder layout the loader reads, in words (shown when the data is missing).
        licence: the terms of the data, in words.
        source: the official home page.
        root_hint: how to point the loader at a folder (shown when the data is missing).
        size: the download size in words (for the README and messages).
    """

    name: str
    files: tuple[RemoteFile, ...]
    layout: str
    licence: str
    source: str
    root_hint: str = "--root DIR"
    size: str = ""
    notes: str = field(default="", compare=False)

    def missing(self, folder: Path) -> list[RemoteFile]:
        """The files whose outputs are not all present in ``folder``."""
        return [f for f in self.files if not all((folder / out).is_file() for out in f.outputs)]


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Register ``spec`` under its name; a second registration of a name is refused unless ``replace``."""
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] != spec:
        raise ValueError(f"dataset spec {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_dataset_spec(name: str) -> DatasetSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("downloadable dataset", name, _REGISTRY) from None


def list_dataset_specs() -> list[str]:
    return sorted(_REGISTRY)


# -- policy -------------------------------------------------------------------------------------------------------
def download_allowed() -> tuple[bool, str]:
    """Whether loaders may download, and why (see the module docstring for the rule)."""
    value = os.environ.get(ENV_DOWNLOAD)
    if value is not None and value.strip().lower() in _TRUE:
        return True, f"{ENV_DOWNLOAD}={value}"
    if value is not None and value.strip().lower() in _FALSE:
        return False, f"downloads are off ({ENV_DOWNLOAD}={value})"
    if value is not None:
        return False, f"downloads are off ({ENV_DOWNLOAD}={value!r} is not one of 1/0, true/false, yes/no, on/off)"
    ci = os.environ.get("CI", "")
    if ci and ci.strip().lower() not in ("0", "false", "no", "off"):
        return False, f"downloads are off in CI (CI={ci}); set {ENV_DOWNLOAD}=1 to allow them"
    if "PYTEST_CURRENT_TEST" in os.environ:
        return False, f"downloads are off inside tests; set {ENV_DOWNLOAD}=1 to allow them"
    return True, "downloads allowed (the default)"


#: set by :func:`download_progress` (the CLI's ``--no-progress``); ``None``: the environment decides
_PROGRESS: contextvars.ContextVar[bool | None] = contextvars.ContextVar("distill_download_progress", default=None)


@contextlib.contextmanager
def download_progress(enabled: bool) -> Iterator[None]:
    """Within the block, download progress bars follow ``enabled`` (the run's ``progress``) rather than
    ``DISTILL_PROGRESS``; loaders need no progress argument of their own."""
    token = _PROGRESS.set(enabled)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def _progress_default() -> bool:
    chosen = _PROGRESS.get()
    if chosen is not None:
        return chosen
    return os.environ.get(ENV_PROGRESS, "1").strip().lower() not in _FALSE - {""}


# -- checks -------------------------------------------------------------------------------------------------------
def _check_relative(name: str, what: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("..", "") for part in path.parts) or "\\" in name:
        raise ValueError(f"{what} {name!r} must be a relative POSIX path without '..'")
    return path


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _warn_unverified(dataset: str, remote: RemoteFile, target: Path) -> None:
    logger.warning("%s: %s has no published checksum distill could verify; it is used unverified (%s)", dataset,
                   target, remote.checksum_source or "no checksum recorded")


# -- fetching -----------------------------------------------------------------------------------------------------
def _candidate_urls(dataset: str, remote: RemoteFile) -> list[str]:
    urls = list(remote.urls)
    mirror = os.environ.get(ENV_MIRROR)
    if mirror:
        urls.insert(0, f"{mirror.rstrip('/')}/{dataset}/{PurePosixPath(remote.path).name}")
    return urls


def _stream(url: str, tmp: Path, remote: RemoteFile, *, timeout: float, progress: bool, desc: str) -> dict[str, str]:
    """Copy ``url`` into ``tmp``; returns the sha256 and md5 of what was written."""
    from tqdm.auto import tqdm

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    hashes = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        total = int(length) if length and length.isdigit() else remote.size
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=not progress,
                  leave=False) as bar:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                for digest in hashes.values():
                    digest.update(chunk)
                bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    return {name: digest.hexdigest() for name, digest in hashes.items()}


def _verify_existing(dataset: str, remote: RemoteFile, target: Path) -> Path:
    expected = remote.checksum
    if expected is None:
        return target
    actual = file_digest(target, expected[0])
    if actual != expected[1]:
        raise ChecksumError(f"{dataset}: the existing file {target} does not match its published {expected[0]} "
                            f"(expected {expected[1]}, actual {actual}); it is kept as it is: remove it to download "
                            "it again, or replace it with the official file")
    return target


def _place(tmp: Path, target: Path) -> None:
    """Move a verified ``tmp`` onto ``target`` atomically without ever replacing a file that appeared meanwhile."""
    from .files import apply_umask

    apply_umask(tmp)
    try:
        os.link(tmp, target)  # fails if target exists: never overwrites
    except FileExistsError:
        logger.info("%s appeared while downloading; keeping the existing file", target)
    except OSError:  # no hard links on this file system: rename (the target was absent just before)
        if target.exists():
            return
        os.replace(tmp, target)
        return
    tmp.unlink(missing_ok=True)


def fetch_file(dataset: str, remote: RemoteFile, folder: str | os.PathLike[str], *, timeout: float = 60.0,
               progress: bool | None = None, spec: DatasetSpec | None = None) -> Path:
    """Download one file of ``dataset`` into ``folder / remote.path`` (or keep the file already there).

    The file is streamed into a temporary file in the same folder, its checksum verified, and it is then linked or
    renamed into place; an existing file is never overwritten (it is checked against the checksum instead).

    Raises:
        ChecksumError: the download (or the existing file) does not match; the temporary file is removed.
        DatasetUnavailableError: no URL answered (no network, timeout, HTTP error); the message names the folder
            layout to provide and ``--root``.
    """
    folder = Path(folder)
    target = folder.joinpath(*_check_relative(remote.path, "RemoteFile.path").parts)
    if target.is_file():
        return _verify_existing(dataset, remote, target)
    if progress is None:
        progress = _progress_default()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetUnavailableError(offline_message(dataset, folder, f"cannot create {target.parent} ({exc})",
                                                      spec)) from None
    errors: list[str] = []
    for url in _candidate_urls(dataset, remote):
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        try:
            logger.info("%s: downloading %s -> %s", dataset, url, target)
            hashes = _stream(url, tmp, remote, timeout=timeout, progress=progress, desc=f"{dataset}: {target.name}")
            expected = remote.checksum
            if expected is not None and hashes[expected[0]] != expected[1]:
                raise ChecksumError(f"{dataset}: {url} does not match its published {expected[0]} (expected "
                                    f"{expected[1]}, actual {hashes[expected[0]]}; source of the checksum: "
                                    f"{remote.checksum_source or 'the dataset spec'}); nothing was kept in "
                                    f"{target.parent}. Try again later, or provide the official file offline.")
            if remote.size is not None and tmp.stat().st_size != remote.size:
                raise ChecksumError(f"{dataset}: {url} has {tmp.stat().st_size} bytes, expected {remote.size}; "
                                    f"nothing was kept in {target.parent}")
            if expected is None:
                _warn_unverified(dataset, remote, target)
            _place(tmp, target)
            return target
        except ChecksumError:
            raise
        except (TimeoutError, urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            # URLError/HTTPError: no network, refused, 404; OSError: timeouts and resets; HTTPException: a cut-off
            # response; ValueError: a malformed URL
            reason = getattr(exc, "reason", None) or exc
            errors.append(f"{url}: {type(exc).__name__}: {str(reason)[:160]}")
            logger.info("%s: %s failed (%s)", dataset, url, reason)
        finally:
            tmp.unlink(missing_ok=True)
    raise DatasetUnavailableError(offline_message(dataset, folder, "; ".join(errors), spec))


def offline_message(dataset: str, folder: Path, reason: str, spec: DatasetSpec | None = None) -> str:
    """The message for a dataset that is neither on disk nor downloadable: what to provide, where, ``--root``."""
    spec = spec or _REGISTRY.get(dataset)
    layout = spec.layout if spec else "the dataset's files"
    hint = spec.root_hint if spec else "--root DIR"
    urls = ""
    if spec:
        urls = " Official files: " + ", ".join(f.urls[0] for f in spec.files) + "."
    return (f"{dataset} is not in {folder} and was not downloaded ({reason}). Provide it offline: {layout}; put "
            f"them in {folder}, or pass {hint} pointing to a folder with this layout.{urls} Downloads: set "
            f"{ENV_DOWNLOAD}=1 to allow them, {ENV_DOWNLOAD}=0 to turn them off.")


def ensure_dataset(name: str, folder: str | os.PathLike[str], *, progress: bool | None = None,
                   timeout: float = 60.0) -> Path:
    """Make the registered dataset ``name`` complete in ``folder``: download (and unpack) the files that are
    missing when downloads are allowed, else raise the offline message.

    Returns:
        ``folder``.

    Raises:
        DatasetUnavailableError: files are missing and downloads are off, or no URL answered.
        ChecksumError: a download did not match its checksum (nothing of it is left on disk).
    """
    spec = get_dataset_spec(name)
    folder = Path(folder)
    missing = spec.missing(folder)
    if not missing:
        return folder
    allowed, why = download_allowed()
    if not allowed:
        raise DatasetUnavailableError(offline_message(name, folder, why, spec))
    for remote in missing:
        archive = fetch_file(name, remote, folder, timeout=timeout, progress=progress, spec=spec)
        if remote.extract:
            extract_archive(archive, folder, members=remote.members)
    still = spec.missing(folder)
    if still:
        raise DatasetUnavailableError(offline_message(
            name, folder, f"the downloaded files do not provide {[o for f in still for o in f.outputs]}", spec))
    return folder


# -- archives -----------------------------------------------------------------------------------------------------
def _safe_member(name: str, archive: Path) -> PurePosixPath | None:
    """The member's relative path, ``None`` for the archive's root entry; refuses absolute or escaping paths."""
    path = PurePosixPath(name.replace("\\", "/"))
    parts = [p for p in path.parts if p not in ("", ".")]
    if path.is_absolute() or any(p == ".." for p in parts) or (parts and ":" in parts[0]):
        raise DataValidationError(f"{archive}: member {name!r} points outside the target folder; refusing to "
                                  "extract this archive (it is not the official file)")
    return PurePosixPath(*parts) if parts else None


def _selected(rel: PurePosixPath, members: Sequence[str]) -> bool:
    return not members or any(str(rel) == m or str(rel).startswith(m.rstrip("/") + "/") for m in members)


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                    members: Iterable[str] = ()) -> list[Path]:
    """Unpack ``archive`` (tar, tar.gz/tgz/bz2/xz, zip, or a single-file ``.gz``) into ``dest``.

    Every member is checked before anything is written: absolute paths, ``..``, links (symbolic or hard), devices
    and FIFOs are refused, so nothing lands outside ``dest``. Members are unpacked into a temporary folder inside
    ``dest`` and moved into place; a file already in ``dest`` is kept, never overwritten.

    Returns:
        The paths now in ``dest`` that came from the archive (or were there already).
    """
    from .files import staging_dir

    archive, dest = Path(archive), Path(dest)
    wanted = tuple(members)
    dest.mkdir(parents=True, exist_ok=True)
    name = archive.name.lower()
    placed: list[Path] = []
    with staging_dir(dest, archive.name) as staging:
        written: list[PurePosixPath] = []
        if name.endswith(".zip"):
            _extract_zip(archive, staging, wanted, written)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, staging, wanted, written)
        elif name.endswith(".gz"):
            import gzip

            rel = PurePosixPath(archive.name[:-3])
            with gzip.open(archive, "rb") as src, open(staging / rel.name, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            written.append(rel)
        else:
            raise DataValidationError(f"{archive} is not an archive distill unpacks (tar, tar.gz, zip, gz)")
        for rel in written:
            source, target = staging.joinpath(*rel.parts), dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                logger.info("%s already exists; keeping it (not replaced from %s)", target, archive)
            else:
                os.replace(source, target)
            placed.append(target)
        shutil.rmtree(staging, ignore_errors=True)
    return placed


def _extract_tar(archive: Path, staging: Path, wanted: Sequence[str], written: list[PurePosixPath]) -> None:
    with tarfile.open(archive) as tar:
        infos = tar.getmembers()
        for info in infos:  # check all members first: a bad archive writes nothing
            rel = _safe_member(info.name, archive)
            if info.issym() or info.islnk():
                raise DataValidationError(f"{archive}: member {info.name!r} is a link; refusing to extract this "
                                          "archive (the official files hold no links)")
            if not (info.isfile() or info.isdir()):
                raise DataValidationError(f"{archive}: member {info.name!r} is not a regular file or folder; "
                                          "refusing to extract this archive")
            if rel is None and info.isfile():
                raise DataValidationError(f"{archive}: member {info.name!r} has no file name")
        _copy_selected(archive, staging, wanted, written,
                       ((info.name, info.isdir(), functools.partial(tar.extractfile, info)) for info in infos))


def _extract_zip(archive: Path, staging: Path, wanted: Sequence[str], written: list[PurePosixPath]) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _safe_member(info.filename, archive)
            mode = info.external_attr >> 16
            if mode and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise DataValidationError(f"{archive}: member {info.filename!r} is a link or special file; "
                                          "refusing to extract this archive")
        _copy_selected(archive, staging, wanted, written,
                       ((info.filename, info.is_dir(), functools.partial(zf.open, info)) for info in infos))


def _copy_selected(archive: Path, staging: Path, wanted: Sequence[str], written: list[PurePosixPath],
                   members: Iterable[tuple[str, bool, Callable[[], IO[bytes] | None]]]) -> None:
    """Copy the wanted regular members ``(name, is_dir, open)`` of an already checked archive into ``staging``."""
    for name, is_dir, open_member in members:
        rel = _safe_member(name, archive)
        if rel is None or is_dir or not _selected(rel, wanted):
            continue
        out = staging.joinpath(*rel.parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        source = open_member()
        if source is None:
            raise DataValidationError(f"{archive}: member {name!r} cannot be read")
        with source, open(out, "wb") as handle:
            shutil.copyfileobj(source, handle, _CHUNK)
        written.append(rel)
