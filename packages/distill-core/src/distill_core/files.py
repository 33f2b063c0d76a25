"""Safe writes: atomic replacement with the user's umask, refusal to overwrite without ``--overwrite``, and a lock
that keeps two runs from writing into one output folder at once.

Every file distill writes goes through a temporary file in the target folder and an atomic rename, so an interrupted
write never destroys what was there; the result gets the permissions any other program would give it under the
user's umask (temporary files are created 0600).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import DataValidationError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "OutputLock", "apply_umask", "atomic_write_bytes", "atomic_write_text", "atomic_write_with",
           "check_new_file", "umask_mode"]

LOCK_NAME = ".distill.lock"


def umask_mode(base: int = 0o666) -> int:
    """``base`` with the process's umask applied (what ``open()`` would create)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def apply_umask(path: str | os.PathLike[str]) -> None:
    """Give a file (0666) or folder (0777) made by ``mkstemp``/``mkdtemp`` the user's default permissions."""
    path = Path(path)
    os.chmod(path, umask_mode(0o777 if path.is_dir() else 0o666))


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (same suffix), then rename it onto ``path``.

    The temporary file is removed when ``write`` fails, so ``path`` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_write_with(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_new_file(path: str | os.PathLike[str], *, overwrite: bool, what: str = "output file") -> Path:
    """Refuse an output ``path`` that is a folder, or an existing file unless ``overwrite``."""
    path = Path(path)
    if path.is_dir():
        raise DataValidationError(f"{what} {path} is a folder; give a file path, e.g. {path / 'summary'}")
    if path.exists() and not overwrite:
        raise DataValidationError(f"{what} {path} already exists; pass --overwrite to replace it, or choose another "
                                  "path")
    if path.parent.exists() and not path.parent.is_dir():
        raise DataValidationError(f"{what} {path}: {path.parent} is a file, not a folder")
    return path


class OutputLock:
    """An exclusive, non-blocking lock on an output folder (``fcntl.flock`` on ``FOLDER/.distill.lock``).

    A second process that tries to write into the same folder while the first holds the lock is refused at once with
    a message naming the holder's process id. The lock file is removed on release; the kernel releases the lock when
    the holder dies, even on ``kill -9`` (the file then stays behind, empty of meaning, and is reused).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def acquire(self) -> OutputLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LOCK_NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, umask_mode())
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                raise DataValidationError(f"{self.directory} is being written by another distill process (pid "
                                          f"{holder}); wait for it to finish or choose another --out") from None
            try:  # the holder before us may have removed the file between our open and our lock: lock anew
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and unlock (in that order, so a waiting process never locks a removed file)."""
        if self._fd is not None:
            (self.directory / LOCK_NAME).unlink(missing_ok=True)
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def staging_dir(parent: Path, name: str) -> Iterator[Path]:
    """A temporary folder beside ``parent / name`` with the user's default permissions; removed on failure."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    try:
        apply_umask(staging)
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
