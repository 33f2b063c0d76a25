"""Folders of things trained once per dataset and settings and reused by later runs (expert trajectories,
generators): where they live by default and their ``manifest.json``, which says what they hold so that a store of
another dataset or setting is refused rather than reused."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .data import RealData, data_fingerprint
from .errors import DataValidationError
from .files import atomic_write_text
from .paths import user_cache_dir

__all__ = ["default_store_root", "open_store_manifest"]


def default_store_root(kind: str, data: RealData, key: str) -> Path:
    """``<user cache>/<kind>/<dataset>-<content hash>-<key>``: one store per dataset content and settings key."""
    fp = data_fingerprint(data)
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(fp["name"]).rsplit("/", 1)[-1])[:40] or "data"
    return user_cache_dir(kind) / f"{name}-{str(fp['train_sha'])[:12]}-{key}"


def open_store_manifest(path: Path, *, what: str, wanted: dict[str, Any], check: Callable[[dict[str, Any]], None],
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of the store folder ``path``: read and passed to ``check`` (which raises on a mismatch with
    ``wanted``) when it exists, else written (``wanted`` plus ``extra``) into the new or empty folder.

    Args:
        path: the store folder.
        what: what the store is called in messages (``"expert store"``).
        wanted: what this run needs the store to hold (JSON-able).
        check: raises :class:`DataValidationError` naming what differs between a stored manifest and ``wanted``.
        extra: written into a new manifest only (library versions, sizes).

    Raises:
        DataValidationError: an unreadable manifest, a folder with other contents, or ``check``'s mismatch.
    """
    manifest_path = path / "manifest.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataValidationError(f"{manifest_path} is not a readable {what} manifest ({exc}); delete the folder "
                                      "to rebuild it, or pass another folder") from exc
        check(manifest)
        return manifest
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        article = "an" if what[:1] in "aeiou" else "a"
        raise DataValidationError(f"{path} exists and is not {article} {what} (no manifest.json); pass an empty or "
                                  "new folder")
    path.mkdir(parents=True, exist_ok=True)
    manifest = {**wanted, **(extra or {})}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest
