"""The raw Planetoid files (``ind.cora.x``, ... as published by Yang et al.) read without running code from them.

The ``x``/``tx``/``allx``/``y``/``ty``/``ally``/``graph`` files are Python 2 pickles, and unpickling runs whatever
callables a file names: torch-geometric's ``Planetoid`` reads them with ``pickle.load`` (and its processed file with
``torch.load``, which falls back to ``weights_only=False``), so a planted file in the data folder or in its cache would
run code. Here a file is read by :func:`distill_core.safe_numpy.restricted_unpickle`, resolving only the globals these
files use (numpy array and dtype reconstruction, scipy's ``csr_matrix``, ``collections.defaultdict(list)``), each to an
inert stand-in; no
numpy or scipy object is built from the file's own state while it is unpickled. The stand-ins become arrays
afterwards, from checked shapes, numeric dtypes and byte buffers, and the graph is assembled exactly as
``torch_geometric.io.read_planetoid_data`` assembles it (same node order, labels, masks and edges).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, index_to_mask, remove_self_loops

from distill_core.errors import DataValidationError
from distill_core.safe_numpy import NUMPY_GLOBALS, ArrayStub, Global, Refused, one_line, restricted_unpickle

__all__ = ["read_planetoid"]

PARTS = ["x", "tx", "allx", "y", "ty", "ally", "graph"]
_FIX = ("use the raw files of the Planetoid release (github.com/kimiyoung/planetoid, data/ind.NAME.*) unchanged")
#: dense feature matrices larger than this (elements) are refused: Cora has 3.9e6, CiteSeer 1.2e7
_MAX_DENSE = 1 << 31


class _CsrStub:
    """What ``scipy.sparse.csr_matrix`` yields (``NEWOBJ`` needs a class): keeps the pickled state, a dict."""

    __slots__ = ("state",)

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise Refused("a csr_matrix state that scipy does not write")
        self.state = state


class _ListType(Global):
    __slots__ = ()


class _DefaultDict(Global):
    """``collections.defaultdict(list)``, the adjacency dict of ``ind.NAME.graph``: read into a plain dict."""

    __slots__ = ()

    def __call__(self, *args: object) -> object:
        if args not in ((), (_LIST,)):
            raise Refused("a defaultdict other than defaultdict(list)")
        return {}


_LIST = _ListType()
_GLOBALS: dict[tuple[str, str], object] = {
    **NUMPY_GLOBALS,
    **{(module, "csr_matrix"): _CsrStub for module in ("scipy.sparse.csr", "scipy.sparse._csr")},
    **{(module, "list"): _LIST for module in ("__builtin__", "builtins")},
    ("collections", "defaultdict"): _DefaultDict(),
}


def _int_array(value: object, what: str) -> np.ndarray:
    array = value.array if isinstance(value, ArrayStub) else None
    if array is None or array.ndim != 1 or array.dtype.kind not in "iu":
        raise Refused(f"its {what} is not a 1-D integer array")
    return array.astype(np.int64)


def _dense(value: object) -> np.ndarray:
    """A 2-D float32 array from an array stand-in or a csr_matrix state (checked before anything is allocated)."""
    if isinstance(value, ArrayStub):
        if value.array is None or value.array.ndim != 2:
            raise Refused("a matrix that is not 2-D")
        return value.array.astype(np.float32)
    if not isinstance(value, _CsrStub) or not hasattr(value, "state"):
        raise Refused(f"a {type(value).__name__} where a matrix belongs")
    state = value.state
    if state.get("format", "csr") != "csr":
        raise Refused(f"a sparse matrix of format {state.get('format')!r:.20}, not csr")
    shape = state.get("_shape", state.get("shape"))
    if not isinstance(shape, tuple) or len(shape) != 2 or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise Refused(f"a csr_matrix shape {shape!r:.60} that is not two sizes")
    rows, cols = shape
    if rows * cols > _MAX_DENSE:
        raise Refused(f"a {rows} x {cols} feature matrix (more than {_MAX_DENSE} entries)")
    indptr, indices = _int_array(state.get("indptr"), "indptr"), _int_array(state.get("indices"), "indices")
    data = state.get("data")
    values = data.array if isinstance(data, ArrayStub) else None
    if values is None or values.ndim != 1:
        raise Refused("its csr data is not a 1-D numeric array")
    nnz = len(indices)
    if len(indptr) != rows + 1 or len(values) != nnz or (rows + 1 and (indptr[0] != 0 or indptr[-1] != nnz)) \
            or bool((np.diff(indptr) < 0).any()) or (nnz and (indices.min() < 0 or indices.max() >= cols)):
        raise Refused(f"an inconsistent csr_matrix ({rows} x {cols}, {len(indptr)} row pointers, {nnz} column "
                       f"indices in [{indices.min() if nnz else 0}, {indices.max() if nnz else 0}], {len(values)} "
                       "values)")
    out = np.zeros((rows, cols), dtype=np.float32)
    np.add.at(out, (np.repeat(np.arange(rows), np.diff(indptr)), indices), values.astype(np.float32))
    return out


def _adjacency(value: object, num_nodes: int) -> torch.Tensor:
    if not isinstance(value, dict):
        raise Refused(f"a {type(value).__name__} where the adjacency dict belongs")
    rows: list[int] = []
    cols: list[int] = []
    for key, targets in value.items():
        if isinstance(key, bool) or not isinstance(key, int) or not isinstance(targets, list) or any(
                isinstance(t, bool) or not isinstance(t, int) for t in targets):
            raise Refused("an adjacency dict that does not map node ids to lists of node ids")
        rows += [key] * len(targets)
        cols += targets
    ids = rows + cols
    if ids and (min(ids) < 0 or max(ids) >= num_nodes):
        raise Refused(f"edges between node ids in [{min(ids)}, {max(ids)}], outside 0..{num_nodes - 1}")
    edge_index = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)
    edge_index, _ = remove_self_loops(edge_index)
    return coalesce(edge_index, num_nodes=num_nodes, sort_by_row=False)


def _read_part(folder: Path, prefix: str, part: str) -> object:
    file = folder / f"ind.{prefix}.{part}"
    try:
        return restricted_unpickle(file.read_bytes(), _GLOBALS, encoding="latin1")
    except FileNotFoundError:
        raise DataValidationError(f"Planetoid file {file} is missing; {folder} must hold ind.{prefix}."
                                  "{x,tx,allx,y,ty,ally,graph,test.index}: " + _FIX) from None
    except OSError as exc:
        raise DataValidationError(f"cannot read the Planetoid file {file} ({one_line(exc)}); check its "
                                  "permissions") from None
    except Refused as exc:
        raise DataValidationError(f"{file} is not a raw Planetoid file: {exc}; {_FIX}") from None
    except Exception as exc:  # a damaged pickle fails in many ways, all of them this one problem
        raise DataValidationError(f"{file} is not a raw Planetoid file (unreadable pickle: {one_line(exc)}); "
                                  f"{_FIX}") from None


def _read_test_index(folder: Path, prefix: str) -> torch.Tensor:
    file = folder / f"ind.{prefix}.test.index"
    try:
        return torch.tensor([int(line) for line in file.read_text().split()], dtype=torch.long)
    except FileNotFoundError:
        raise DataValidationError(f"Planetoid file {file} is missing; {_FIX}") from None
    except (OSError, ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise DataValidationError(f"{file} is not a list of node ids, one a line ({one_line(exc)}); "
                                  f"{_FIX}") from None


def read_planetoid(folder: str | Path, name: str) -> Data:
    """Cora, CiteSeer or PubMed from its raw Planetoid files in ``folder``, as
    ``torch_geometric.io.read_planetoid_data`` builds it (dense, unnormalised features; 140 / 120 / 60 training, 500
    validation, 1,000 test nodes), without running code from the files.

    Args:
        folder: the ``raw`` folder holding ``ind.NAME.{x,tx,allx,y,ty,ally,graph,test.index}``.
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (CiteSeer's isolated test nodes are filled in as PyG
            does).

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
            raise Refused(f"inconsistent sizes (x {tuple(x.shape)}, y {tuple(y.shape)}, tx {tuple(tx.shape)}, ty "
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
            raise Refused(f"test node ids in [{int(test_index.min())}, {int(test_index.max())}] or {len(y)} "
                           f"training + 500 validation nodes that do not fit the {n} nodes")
        features[test_index] = features[sorted_test_index]
        labels = torch.cat([ally, ty], dim=0).max(dim=1)[1]
        labels[test_index] = labels[sorted_test_index]
        edge_index = _adjacency(parts["graph"], n)
    except Refused as exc:
        raise DataValidationError(f"the Planetoid files of {name} in {folder} are not the original ones: {exc}; "
                                  f"{_FIX}") from None
    except (IndexError, RuntimeError, ValueError, MemoryError) as exc:
        raise DataValidationError(f"the Planetoid files of {name} in {folder} do not fit together "
                                  f"({one_line(exc)}); {_FIX}") from None
    return Data(x=features, edge_index=edge_index, y=labels,
                train_mask=index_to_mask(torch.arange(len(y)), size=n),
                val_mask=index_to_mask(torch.arange(len(y), len(y) + 500), size=n),
                test_mask=index_to_mask(test_index, size=n))
