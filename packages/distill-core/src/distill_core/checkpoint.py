"""Checkpoints in the artifact's own formats: one ``checkpoint.safetensors`` file whose tensors are the state's
tensors and whose header metadata holds the rest of the state as JSON. Nothing is ever unpickled.

A state is a nest of dicts, lists, tuples, tensors, numbers, strings, booleans and ``None`` (a summary's,
an optimizer's and a method's ``state_dict()``). Tensors become safetensors entries; tuples and dicts with
non-string keys (an optimizer's parameter ids) are tagged so that they come back as they were.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes
from safetensors.torch import save_file

from .errors import DataValidationError
from .files import atomic_write_with

__all__ = ["CHECKPOINT", "LEGACY_CHECKPOINT", "load_state", "save_state", "state_from_bytes", "state_to_bytes"]

CHECKPOINT = "checkpoint.safetensors"
LEGACY_CHECKPOINT = "checkpoint.pt"  # pickle, written before version 0.2; never loaded
_META_KEY = "distill_state"
_FORMAT = "distill-checkpoint"
_TAGS = ("__tensor__", "__tuple__", "__items__")


def _encode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not any(t in obj for t in _TAGS):
            return {k: _encode(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in obj.items()]}
    raise TypeError(f"a checkpoint cannot hold a {type(obj).__name__}; method state must be made of tensors, "
                    "numbers, strings, lists and dicts")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__tensor__"}:
            return tensors[obj["__tensor__"]]
        if set(obj) == {"__tuple__"}:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    return obj


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict, torch.Tensor)):
        raise ValueError(f"a dict key of type {type(key).__name__}")
    return key


def _encoded(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    meta = json.dumps({"format": _FORMAT, "version": 1, "state": _encode(state, tensors)})
    return tensors, {_META_KEY: meta}


def save_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` atomically to ``path`` (a ``.safetensors`` file)."""
    tensors, metadata = _encoded(state)
    return atomic_write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """``state`` as the bytes of a checkpoint file (what rank 0 sends the other ranks on resume)."""
    tensors, metadata = _encoded(state)
    return save_bytes(tensors, metadata=metadata)


def state_from_bytes(data: bytes) -> dict[str, Any]:
    """The state in bytes from :func:`state_to_bytes` (tensors on the CPU)."""
    header_len = int.from_bytes(data[:8], "little")  # safetensors: u64 header length, then the JSON header
    meta = json.loads(data[8:8 + header_len])["__metadata__"][_META_KEY]
    return _decode(json.loads(meta)["state"], load_bytes(data))


def load_state(path: str | os.PathLike[str], *, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a state written by :func:`save_state`.

    Raises:
        DataValidationError: the file is missing, truncated, corrupt or not a distill checkpoint (with the fix).
    """
    path = Path(path)
    fix = f"delete {path} to start over, or choose another --out"
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            meta = (handle.metadata() or {}).get(_META_KEY)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DataValidationError(f"checkpoint {path} cannot be read ({exc}); {fix}") from exc
    try:
        payload = json.loads(meta) if meta is not None else None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError("no distill checkpoint header")
        state = _decode(payload["state"], tensors)
        if not isinstance(state, dict):
            raise ValueError("the state is not a dict")
    except (ValueError, KeyError, TypeError) as exc:
        raise DataValidationError(f"checkpoint {path} is not a distill checkpoint ({exc}); {fix}") from exc
    return state
