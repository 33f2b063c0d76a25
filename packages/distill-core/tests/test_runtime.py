import ctypes

import pytest

import distill_core.runtime as runtime


def test_retain_freed_memory_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_STATE", None)
    first = runtime.retain_freed_memory()
    assert runtime.retain_freed_memory() is first
    try:
        ctypes.CDLL("libc.so.6").mallopt  # noqa: B018
    except (OSError, AttributeError):
        assert first is False
    else:
        assert first is True


def test_env_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "_STATE", None)
    monkeypatch.setenv("DISTILL_MALLOC_TUNING", "0")
    assert runtime.retain_freed_memory() is False
