"""Where distill keeps files of its own (caches), created private to the user and checked before use.

A cache under the shared system temp folder at a predictable path can be planted by another local user; the user's
cache folder (``$XDG_CACHE_HOME/distill``, default ``~/.cache/distill``), created mode 0700 and checked to be owned
by the current user and not writable by others, cannot.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import DataValidationError

__all__ = ["user_cache_dir", "user_data_dir"]


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "distill"


def _check_private(path: Path) -> None:
    """Refuse a folder that another user owns or may write into (it could hold planted files)."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise DataValidationError(f"cache folder {path} is not a plain folder (a link or a file); remove it and run "
                                  "again, or set XDG_CACHE_HOME to a folder of your own")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise DataValidationError(f"cache folder {path} belongs to another user (uid {info.st_uid}); remove it or "
                                  "set XDG_CACHE_HOME to a folder of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DataValidationError(f"cache folder {path} is writable by other users (mode "
                                  f"{stat.S_IMODE(info.st_mode):o}); run `chmod 700 {path}` or remove it")


def user_cache_dir(*parts: str) -> Path:
    """The private cache folder ``$XDG_CACHE_HOME/distill/PARTS...`` (default ``~/.cache/distill``), created mode
    0700 and checked (owner, not a link, not group/world-writable) at every level distill creates.

    Raises:
        DataValidationError: the folder exists but belongs to another user, is a link, or others may write to it.
    """
    path = _cache_root()
    for part in ("", *parts):
        if part:
            if part in (".", "..") or "/" in part or os.sep in part:
                raise DataValidationError(f"cache folder name {part!r} must be a single plain name")
            path = path / part
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        _check_private(path)
    return path


def user_data_dir(*parts: str) -> Path:
    """Where named datasets are looked for when no ``--root`` is given: ``$XDG_DATA_HOME/distill/PARTS...``
    (default ``~/.local/share/distill/...``). Not created: a loader that finds nothing there names the folder and
    the files to put in it."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root.joinpath("distill", *parts)
