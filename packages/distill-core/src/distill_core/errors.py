"""Exceptions raised by distill. Every message names the problem and the fix."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "ArtifactError",
    "DataValidationError",
    "DistillError",
    "DivergenceError",
    "MissingDependencyError",
    "UnknownNameError",
]


class DistillError(Exception):
    """Base class of all errors raised by distill."""


class DataValidationError(DistillError, ValueError):
    """The input data (shapes, labels, values, budget) cannot be distilled as given."""


class ArtifactError(DistillError, ValueError):
    """An artifact directory is missing, corrupt, truncated or was not written by distill."""


class DivergenceError(DistillError, RuntimeError):
    """The outer loop produced a non-finite loss, gradient or summary; the last good state was kept."""


class MissingDependencyError(DistillError, ImportError):
    """An optional dependency is not installed."""


class UnknownNameError(DistillError, KeyError):
    """A method, dataset, model or option name is not known; the message lists the valid choices."""

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        super().__init__(f"Could not resolve {kind} {name!r} among choices {self.choices}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


def require(module: str, pip_name: str | None = None, *, purpose: str = "") -> object:
    """Import an optional dependency or fail with the exact pip command that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        what = f" for {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"{module} is needed{what} but is not installed; run: pip install {pip_name or module}"
        ) from exc
