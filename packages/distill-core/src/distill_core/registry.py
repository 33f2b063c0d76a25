"""Registries of methods and modalities.

Methods and modalities are found through the entry-point groups ``distill.methods`` (``name =
"package.module:Class"``, distill-core's own baselines included) and ``distill.modalities`` of the installed
packages, loaded lazily so that a missing optional package never breaks the others; the entry point's name is the
method's name. :func:`register_method` / :func:`register_modality` add classes defined at run time (tests,
notebooks), never the packages' own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import DataValidationError, UnknownNameError

if TYPE_CHECKING:
    from .method import Method
    from .modality import Modality

__all__ = ["get_method", "get_modality", "list_methods", "list_modalities", "register_method", "register_modality"]

logger = logging.getLogger(__name__)
METHOD_GROUP = "distill.methods"
MODALITY_GROUP = "distill.modalities"
_METHODS: dict[str, type[Method[Any]]] = {}
_MODALITIES: dict[str, type[Modality]] = {}
M = TypeVar("M")


def register_method(name: str) -> Callable[[type[M]], type[M]]:
    """Class decorator registering a method under ``name``; a second, different class with the same name is
    refused."""

    def decorate(cls: type[M]) -> type[M]:
        existing = _METHODS.get(name)
        # the same class re-imported (a reload) may re-register; another class, even of the same name, may not
        if existing is not None and (existing.__module__, existing.__qualname__) != (
                cls.__module__, cls.__qualname__):  # type: ignore[attr-defined]
            raise ValueError(f"method name {name!r} is already registered by {existing.__module__}.{existing.__name__}")
        cls.name = name  # type: ignore[attr-defined]
        _METHODS[name] = cls  # type: ignore[assignment]
        return cls

    return decorate


def register_modality(cls: type[M]) -> type[M]:
    _MODALITIES[cls.name] = cls  # type: ignore[attr-defined]
    return cls


def _entry_points(group: str) -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=group)}


def list_methods() -> list[str]:
    """Names of every built-in and installed method."""
    return sorted(set(_METHODS) | set(_entry_points(METHOD_GROUP)))


def get_method(name: str) -> type[Method[Any]]:
    """The method class registered as ``name``; unknown names fail with the list of choices."""
    if name not in _METHODS:
        eps = _entry_points(METHOD_GROUP)
        if name not in eps:
            raise UnknownNameError("method", name, list_methods())
        cls = eps[name].load()
        if not getattr(cls, "name", ""):
            cls.name = name  # entry points name the method; the class need not repeat it
        _METHODS.setdefault(name, cls)
    return _METHODS[name]


def list_modalities() -> list[str]:
    return sorted(set(_MODALITIES) | set(_entry_points(MODALITY_GROUP)))


def get_modality(name: str) -> Modality:
    """A new instance of the modality ``name``."""
    if name not in _MODALITIES:
        eps = _entry_points(MODALITY_GROUP)
        if name not in eps:
            raise UnknownNameError("modality", name, list_modalities())
        _MODALITIES[name] = eps[name].load()
    return _MODALITIES[name]()


def modality_for_dataset(spec: str) -> Modality:
    """The one installed modality that claims the dataset ``spec``.

    Raises:
        UnknownNameError: no modality claims it (the message lists every known dataset name).
        DataValidationError: more than one does (e.g. a CSV whose header names neither modality's columns, or a
            missing file); the message asks for ``--modality``.
    """
    known: list[str] = []
    claimers: list[Modality] = []
    for name in list_modalities():
        try:
            modality = get_modality(name)
        except ImportError as exc:  # a broken optional package must not hide the others
            logger.warning("modality %s is installed but cannot be imported: %s", name, exc)
            continue
        if modality.claims(spec):
            claimers.append(modality)
        known += modality.dataset_names()
    if len(claimers) == 1:
        return claimers[0]
    if claimers:
        names = [m.name for m in claimers]
        raise DataValidationError(
            f"dataset {spec!r} could be read by the modalities {names}; pass --modality {'|'.join(names)} to choose "
            "(and check that the file exists and its header names the columns that modality reads)")
    raise UnknownNameError("dataset", spec, [*known, "npz:PATH (and the prefixes of the installed modalities)"])
