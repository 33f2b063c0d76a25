"""The raw Planetoid files (``ind.cora.x``, ... as published by Yang et al.) read without running code from them.

The ``x``/``tx``/``allx``/``y``/``ty``/``ally``/``graph`` files are Python 2 pickles, and unpickling runs whatever
callables a file names: torch-geometric's ``Planetoid`` reads them with ``pickle.load`` (and its processed file with
``torch.load``, which falls back to ``weights_only=False``), so a planted file in the data folder or in its cache would
run code. Here a file is read by an unpickler that resolves only the globals these files use (numpy array and dtype
reconstruction, scipy's ``csr_matrix``, ``collections.defaultdict(list)``) and resolves each to an inert stand-in; no
numpy or scipy object is built from the file's own state while it is unpickled. The stand-ins become arrays
afterwards, from checked shapes, numeric dtypes and byte buffers, and the graph is assembled exactly as
``torch_geometric.io.read_planetoid_data`` assembles it (same node order, labels, masks and edges).
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, index_to_mask, remove_self_loops

from distill_core.errors import DataValidationError

__all__ = ["read_planetoid"]

PARTS = ["x", "tx", "allx", "y", "ty", "ally", "graph"]
_FIX = ("use the raw files of the Planetoid release (github.com/kimiyoung/planetoid, data/ind.NAME.*) unchanged")
_NUMERIC_KINDS = "biuf"
#: dense feature matrices larger than this (elements) are refused: Cora has 3.9e6, CiteSeer 1.2e7
_MAX_DENSE = 1 << 31


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler; turned into a DataValidationError naming the file."""


def _one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line, at most ~200 characters."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, str):  # Python 2 byte strings come back as latin-1 text
        try:
            return raw.encode("latin-1")
        except UnicodeEncodeError:
            raise _Refused("array data that is not a byte string") from None
    if isinstance(raw, (bytes, bytearray)):
        return bytes(raw)
    raise _Refused("array data that is not a byte string")


def _plain_dtype(spec: object, byteorder: object = "=") -> np.dtype:
    """A non-structured numeric dtype from a dtype string (``"i4"``, ``"<f8"``); anything else is refused."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str) or len(spec) > 8:
        raise _Refused(f"an array dtype {spec!r:.40} that is not a numeric dtype string")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError):
        raise _Refused(f"an unknown array dtype {spec!r}") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise _Refused(f"an array of dtype {dtype} (only numeric arrays are read)")
    if byteorder in ("<", ">"):
        dtype = dtype.newbyteorder(byteorder)  # type: ignore[arg-type]
    return dtype


class _Stub:
    """Base of the stand-ins: no attributes a pickle can set (``BUILD`` goes through ``__setstate__``)."""

    __slots__ = ()

    def __setstate__(self, state: object) -> None:
        raise _Refused(f"state for a {type(self).__name__.strip('_')}")


class _DtypeStub(_Stub):
    """What ``numpy.dtype(...)`` yields while a file is unpickled."""

    __slots__ = ("dtype",)

    def __init__(self, spec: object) -> None:
        self.dtype = _plain_dtype(spec)

    def __setstate__(self, state: object) -> None:
        # numpy writes (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
            raise _Refused("a structured or subarray dtype (only plain numeric arrays are read)")
        order = state[1].decode("latin-1") if isinstance(state[1], bytes) else state[1]
        self.dtype = _plain_dtype(self.dtype.str[1:], order)


class _ArrayStub(_Stub):
    """What ``numpy.core.multiarray._reconstruct(...)`` yields; ``__setstate__`` receives numpy's array state."""

    __slots__ = ("array",)

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        # numpy writes (version, shape, dtype, is_fortran, raw bytes); very old versions omit the version
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4:
            raise _Refused("an array state that numpy does not write")
        shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DtypeStub):
            raise _Refused("an array whose dtype is not a numpy dtype")
        data = _as_bytes(raw)
        if not isinstance(shape, tuple) or len(shape) > 8 or any(
                isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
            raise _Refused(f"an array shape {shape!r:.60} that is not a tuple of sizes")
        count = math.prod(shape)
        if count * dtype.dtype.itemsize != len(data):
            raise _Refused(f"an array of shape {shape} ({dtype.dtype}) over {len(data)} bytes of data")
        flat = np.frombuffer(data, dtype=dtype.dtype, count=count) if count else np.empty(0, dtype.dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C")


class _CsrStub:
    """What ``scipy.sparse.csr_matrix`` yields (``NEWOBJ`` needs a class): keeps the pickled state, a dict."""

    __slots__ = ("state",)

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise _Refused("a csr_matrix state that scipy does not write")
        self.state = state


class _Global(_Stub):
    """A stand-in for one allowed global: a callable instance that refuses every call it does not expect."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        raise _Refused(f"a call of {type(self).__name__.strip('_')}")


class _NdarrayType(_Global):
    __slots__ = ()


class _ListType(_Global):
    __slots__ = ()


class _Reconstruct(_Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 3 or not isinstance(args[0], _NdarrayType) or args[1] != (0,):
            raise _Refused("an array reconstruction that numpy does not write")
        return _ArrayStub()


class _Dtype(_Global):
    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if not 1 <= len(args) <= 3:
            raise _Refused("a dtype call that numpy does not write")
        return _DtypeStub(args[0])


class _DefaultDict(_Global):
    """``collections.defaultdict(list)``, the adjacency dict of ``ind.NAME.graph``: read into a plain dict."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if args not in ((), (_LIST,)):
            raise _Refused("a defaultdict other than defaultdict(list)")
        return {}


class _Encode(_Global):
    """``_codecs.encode(text, "latin1")``: how Python 3 writes bytes at protocol 2."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
            raise _Refused("a text encoding other than latin-1")
        return _as_bytes(args[0])


_LIST = _ListType()
_GLOBALS: dict[tuple[str, str], object] = {
    **{(module, "_reconstruct"): _Reconstruct() for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): _NdarrayType(),
    ("numpy", "dtype"): _Dtype(),
    **{(module, "csr_matrix"): _CsrStub for module in ("scipy.sparse.csr", "scipy.sparse._csr")},
    **{(module, "list"): _LIST for module in ("__builtin__", "builtins")},
    ("collections", "defaultdict"): _DefaultDict(),
    ("_codecs", "encode"): _Encode(),
}


class _PlanetoidUnpickler(pickle.Unpickler):
    """Resolves only the globals of :data:`_GLOBALS`, each to its inert stand-in."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _GLOBALS[(module, name)]
        except (KeyError, TypeError):
            reference = " ".join(f"{module}.{name}".split())[:100]  # any text a crafted STACK_GLOBAL names
            raise _Refused(f"it references {reference} (refused, never imported or run)") from None

    def persistent_load(self, pid: object) -> Any:
        raise _Refused("it references an external object")


def _unpickle(file: Path) -> object:
    data = file.read_bytes()
    # pickletools walks the opcodes without running them and checks each length against the bytes left, so the
    # unpickler never allocates what a crafted length or memo index claims
    for opcode, arg, pos in pickletools.genops(data):
        if opcode.name == "FRAME" and isinstance(arg, int) and arg > len(data) - (pos or 0):
            raise _Refused(f"a frame of {arg} bytes in a {len(data)}-byte file")
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and (not isinstance(arg, int) or arg > len(data)):
            raise _Refused(f"a memo index {arg!r:.20} beyond the size of the file")
    return _PlanetoidUnpickler(io.BytesIO(data), encoding="latin1").load()


def _int_array(value: object, what: str) -> np.ndarray:
    array = value.array if isinstance(value, _ArrayStub) else None
    if array is None or array.ndim != 1 or array.dtype.kind not in "iu":
        raise _Refused(f"its {what} is not a 1-D integer array")
    return array.astype(np.int64)


def _dense(value: object) -> np.ndarray:
    """A 2-D float32 array from an array stand-in or a csr_matrix state (checked before anything is allocated)."""
    if isinstance(value, _ArrayStub):
        if value.array is None or value.array.ndim != 2:
            raise _Refused("a matrix that is not 2-D")
        return value.array.astype(np.float32)
    if not isinstance(value, _CsrStub) or not hasattr(value, "state"):
        raise _Refused(f"a {type(value).__name__} where a matrix belongs")
    state = value.state
    if state.get("format", "csr") != "csr":
        raise _Refused(f"a sparse matrix of format {state.get('format')!r:.20}, not csr")
    shape = state.get("_shape", state.get("shape"))
    if not isinstance(shape, tuple) or len(shape) != 2 or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise _Refused(f"a csr_matrix shape {shape!r:.60} that is not two sizes")
    rows, cols = shape
    if rows * cols > _MAX_DENSE:
        raise _Refused(f"a {rows} x {cols} feature matrix (more than {_MAX_DENSE} entries)")
    indptr, indices = _int_array(state.get("indptr"), "indptr"), _int_array(state.get("indices"), "indices")
    data = state.get("data")
    values = data.array if isinstance(data, _ArrayStub) else None
    if values is None or values.ndim != 1:
        raise _Refused("its csr data is not a 1-D numeric array")
    nnz = len(indices)
    if len(indptr) != rows + 1 or len(values) != nnz or (rows + 1 and (indptr[0] != 0 or indptr[-1] != nnz)) \
            or bool((np.diff(indptr) < 0).any()) or (nnz and (indices.min() < 0 or indices.max() >= cols)):
        raise _Refused(f"an inconsistent csr_matrix ({rows} x {cols}, {len(indptr)} row pointers, {nnz} column "
                       f"indices in [{indices.min() if nnz else 0}, {indices.max() if nnz else 0}], {len(values)} "
                       "values)")
    out = np.zeros((rows, cols), dtype=np.float32)
    np.add.at(out, (np.repeat(np.arange(rows), np.diff(indptr)), indices), values.astype(np.float32))
    return out


def _adjacency(value: object, num_nodes: int) -> torch.Tensor:
    if not isinstance(value, dict):
        raise _Refused(f"a {type(value).__name__} where the adjacency dict belongs")
    rows: list[int] = []
    cols: list[int] = []
    for key, targets in value.items():
        if isinstance(key, bool) or not isinstance(key, int) or not isinstance(targets, list) or any(
                isinstance(t, bool) or not isinstance(t, int) for t in targets):
            raise _Refused("an adjacency dict that does not map node ids to lists of node ids")
        rows += [key] * len(targets)
        cols += targets
    ids = rows + cols
    if ids and (min(ids) < 0 or max(ids) >= num_nodes):
        raise _Refused(f"edges between node ids in [{min(ids)}, {max(ids)}], outside 0..{num_nodes - 1}")
    edge_index = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)
    edge_index, _ = remove_self_loops(edge_index)
    return coalesce(edge_index, num_nodes=num_nodes, sort_by_row=False)


def _read_part(folder: Path, prefix: str, part: str) -> object:
    file = folder / f"ind.{prefix}.{part}"
    try:
        return _unpickle(file)
    except FileNotFoundError:
        raise DataValidationError(f"Planetoid file {file} is missing; {folder} must hold ind.{prefix}."
                                  "{x,tx,allx,y,ty,ally,graph,test.index}: " + _FIX) from None
    except OSError as exc:
        raise DataValidationError(f"cannot read the Planetoid file {file} ({_one_line(exc)}); check its "
                                  "permissions") from None
    except _Refused as exc:
        raise DataValidationError(f"{file} is not a raw Planetoid file: {exc}; {_FIX}") from None
    except Exception as exc:  # a damaged pickle fails in many ways, all of them this one problem
        raise DataValidationError(f"{file} is not a raw Planetoid file (unreadable pickle: {_one_line(exc)}); "
                                  f"{_FIX}") from None


def _read_test_index(folder: Path, prefix: str) -> torch.Tensor:
    file = folder / f"ind.{prefix}.test.index"
    try:
        return torch.tensor([int(line) for line in file.read_text().split()], dtype=torch.long)
    except FileNotFoundError:
        raise DataValidationError(f"Planetoid file {file} is missing; {_FIX}") from None
    except (OSError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise DataValidationError(f"{file} is not a list of node ids, one a line ({_one_line(exc)}); "
                                  f"{_FIX}") from None


def read_planetoid(folder: str | Path, name: str) -> Data:
    """Cora or CiteSeer from its raw Planetoid files in ``folder``, as ``torch_geometric.io.read_planetoid_data``
    builds it (dense, unnormalised features; 140 / 120 training, 500 validation, 1,000 test nodes), without
    running code from the files.

    Args:
        folder: the ``raw`` folder holding ``ind.NAME.{x,tx,allx,y,ty,ally,graph,test.index}``.
        name: ``"cora"`` or ``"citeseer"`` (CiteSeer's isolated test nodes are filled in as PyG does).

    Raises:
        DataValidationError: a file is missing, unreadable, damaged, not one of the original Planetoid pickles
            (anything but numpy arrays, csr matrices and the adjacency dict is refused before it runs), or the files
            disagree with each other.
    """
    folder, prefix = Path(folder), name.lower()
    parts = {part: _read_part(folder, prefix, part) for part in PARTS}
    test_index = _read_test_index(folder, prefix)
    try:
        x, tx, allx = (torch.from_numpy(_dense(parts[p])) for p in ("x", "tx", "allx"))
        y, ty, ally = (torch.from_numpy(_dense(parts[p])) for p in ("y", "ty", "ally"))
        same_widths = x.shape[1] == tx.shape[1] == allx.shape[1] and y.shape[1] == ty.shape[1] == ally.shape[1]
        if not len(test_index) or len(x) != len(y) or len(tx) != len(ty) or len(allx) != len(ally) \
                or not same_widths or not y.shape[1] or len(tx) != len(test_index):
            raise _Refused(f"inconsistent sizes (x {tuple(x.shape)}, y {tuple(y.shape)}, tx {tuple(tx.shape)}, ty "
                           f"{tuple(ty.shape)}, allx {tuple(allx.shape)}, ally {tuple(ally.shape)}, "
                           f"{len(test_index)} test ids)")
        sorted_test_index = test_index.sort()[0]
        if prefix == "citeseer":  # isolated test nodes: zero rows, as torch_geometric adds them
            low, span = int(test_index.min()), int(test_index.max() - test_index.min()) + 1
            tx_ext = torch.zeros(span, tx.size(1), dtype=tx.dtype)
            tx_ext[sorted_test_index - low, :] = tx
            ty_ext = torch.zeros(span, ty.size(1), dtype=ty.dtype)
            ty_ext[sorted_test_index - low, :] = ty
            tx, ty = tx_ext, ty_ext
        features = torch.cat([allx, tx], dim=0)
        n = len(features)
        if int(test_index.min()) < 0 or int(test_index.max()) >= n or len(y) + 500 > n:
            raise _Refused(f"test node ids in [{int(test_index.min())}, {int(test_index.max())}] or {len(y)} "
                           f"training + 500 validation nodes that do not fit the {n} nodes")
        features[test_index] = features[sorted_test_index]
        labels = torch.cat([ally, ty], dim=0).max(dim=1)[1]
        labels[test_index] = labels[sorted_test_index]
        edge_index = _adjacency(parts["graph"], n)
    except _Refused as exc:
        raise DataValidationError(f"the Planetoid files of {name} in {folder} are not the original ones: {exc}; "
                                  f"{_FIX}") from None
    except (IndexError, RuntimeError, ValueError, MemoryError) as exc:
        raise DataValidationError(f"the Planetoid files of {name} in {folder} do not fit together "
                                  f"({_one_line(exc)}); {_FIX}") from None
    return Data(x=features, edge_index=edge_index, y=labels,
                train_mask=index_to_mask(torch.arange(len(y)), size=n),
                val_mask=index_to_mask(torch.arange(len(y), len(y) + 500), size=n),
                test_mask=index_to_mask(test_index, size=n))
