"""Shared parts of the property-based fuzz tests (``hypothesis``) that every package runs over its loaders.

``hypothesis`` is a test dependency only: import this module from tests, never from library code.

Two profiles: ``ci`` (the default; few, derandomized examples so the suite runs in seconds and is reproducible) and
``thorough`` (many random examples, on demand: ``DISTILL_FUZZ_PROFILE=thorough pytest -k fuzz``). Run pytest with
``--hypothesis-show-statistics`` to see how many cases each test tried.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from .errors import DistillError

__all__ = ["PROFILES", "claim_and_load", "flip_bytes", "load_profile", "only_distill_errors", "sandbox"]

#: examples per test of each profile
PROFILES = {"ci": 40, "thorough": 2000}


def load_profile() -> str:
    """Register the profiles and load the one named by ``DISTILL_FUZZ_PROFILE`` (default ``ci``)."""
    for name, examples in PROFILES.items():
        settings.register_profile(
            name, max_examples=examples, deadline=None, derandomize=name == "ci", database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                   HealthCheck.data_too_large])
    profile = os.environ.get("DISTILL_FUZZ_PROFILE", "ci")
    settings.load_profile(profile)
    return profile


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A fresh folder for the inputs of one fuzz case; the working directory, ``HOME`` and ``XDG_CACHE_HOME`` point
    into fresh empty folders meanwhile. On exit it asserts that nothing was written there (a loader must write
    nothing beyond its own cache, and the fuzzed inputs never reach a cache)."""
    old_cwd = Path.cwd()
    saved = {k: os.environ.get(k) for k in ("HOME", "XDG_CACHE_HOME")}
    with tempfile.TemporaryDirectory(prefix="distill-fuzz-") as tmp:
        root = Path(tmp)
        data, work, home = root / "data", root / "work", root / "home"
        for folder in (data, work, home):
            folder.mkdir()
        os.environ["HOME"] = str(home)
        os.environ["XDG_CACHE_HOME"] = str(home / ".cache")
        os.chdir(work)
        try:
            yield data
        finally:
            os.chdir(old_cwd)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        written = [str(p.relative_to(root)) for p in (*work.rglob("*"), *home.rglob("*"))]
        assert not written, f"the loader wrote outside its input folder: {written}"


def flip_bytes(blob: bytes, data: st.DataObject, *, most: int = 4) -> bytes:
    """``blob`` with 1 to ``most`` bytes XOR-ed with non-zero values, positions and values drawn from ``data``
    (a corrupted copy of a valid file)."""
    corrupted = bytearray(blob)
    for _ in range(data.draw(st.integers(1, most), label="flips")):
        position = data.draw(st.integers(0, len(corrupted) - 1), label="position")
        corrupted[position] ^= data.draw(st.integers(1, 255), label="xor")
    return bytes(corrupted)


def only_distill_errors(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; return its result or the :class:`DistillError` it raised. Any other exception propagates, so
    the fuzz test fails on it."""
    try:
        return fn(*args, **kwargs)
    except DistillError as exc:
        assert str(exc), "a DistillError must carry a message"
        return exc


def claim_and_load(modality: Any, spec: str, *, root: str | None, check: Callable[[Any], None]) -> Any:
    """The CLI's loading path for one fuzz case: ``modality.claims(spec)`` must answer a bool, then
    ``load_dataset`` may only raise a :class:`DistillError`; what loads must pass ``check``."""
    assert isinstance(modality.claims(spec), bool)
    result = only_distill_errors(modality.load_dataset, spec, root=root)
    if not isinstance(result, DistillError):
        check(result)
    return result
