"""Graphs as the distillers see them: loading (Planetoid citation graphs offline, KarateClub, a seeded SBM graph,
users' ``.npz`` files and saved PyG ``Data``), validation with clear errors, and the :class:`RealData` view.

A node-classification graph becomes a :class:`~distill_core.data.RealData` whose ``x_train``/``y_train`` are the
features and labels of the training nodes (so the core's validation, class index and budgets work unchanged) and
whose ``x_test``/``y_test`` are the test nodes. The graph itself (a ``torch_geometric.data.Data`` with a symmetric
``edge_index`` and ``train_mask``/``val_mask``/``test_mask``) is ``data.extra["graph"]``; ``extra["ratio_base"]``
is the number of nodes, so that ``--ratio`` is a fraction of the whole graph, as in GCond's tables.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, is_undirected, remove_self_loops, to_undirected

from distill_core.data import RealData
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.preprocessing import Preprocessing

__all__ = [
    "DATASETS",
    "GraphContext",
    "graph_context",
    "load_graph",
    "make_sbm_graph",
    "real_data_from_graph",
    "validate_graph",
]

logger = logging.getLogger(__name__)
PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer"}
DATASETS = ["citeseer", "cora", "karate", "sbm"]
ROOT_ENV = "DISTILL_PLANETOID_ROOT"


# -- validation ---------------------------------------------------------------------------------------------------
def validate_graph(graph: Data, *, name: str = "graph", undirected: bool = True) -> Data:
    """Check and normalise a node-classification graph; returns a clean copy.

    Errors (``DataValidationError``, with the fix): missing ``x``/``y``/``edge_index`` or masks, shape mismatches,
    edge indices out of range, non-integer labels, empty or overlapping train/test masks. Conversions with a
    warning: a directed edge list is symmetrised (``undirected=True``), self loops and duplicate edges are removed,
    isolated nodes are reported (they keep their self loop in GCN normalisation).

    Shapes:
        x: ``(N, d)``; y: ``(N,)``; edge_index: ``(2, E)``; masks: ``(N,)`` bool.
    """
    for key in ("x", "y", "edge_index"):
        if getattr(graph, key, None) is None:
            raise DataValidationError(f"{name}: the graph has no {key!r}; a node-classification graph needs x (N, d) "
                                      "features, y (N,) labels and edge_index (2, E)")
    missing = [m for m in ("train_mask", "val_mask", "test_mask") if getattr(graph, m, None) is None]
    if missing:
        raise DataValidationError(f"{name}: the graph lacks {missing}; give boolean (N,) masks for the train, "
                                  "validation and test nodes (e.g. torch_geometric.transforms.RandomNodeSplit)")
    x, y, edge_index = graph.x, graph.y, graph.edge_index
    if x.dim() != 2:
        raise DataValidationError(f"{name}: x must be (N, d) node features, got shape {tuple(x.shape)}")
    n = len(x)
    if y.dim() != 1 or len(y) != n:
        raise DataValidationError(f"{name}: y must be (N,) = ({n},) class indices, got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise DataValidationError(f"{name}: y must hold integer class indices, got dtype {y.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise DataValidationError(f"{name}: edge_index must be (2, E), got shape {tuple(edge_index.shape)}; "
                                  "transpose an (E, 2) edge list")
    if edge_index.dtype.is_floating_point:
        raise DataValidationError(f"{name}: edge_index must hold integer node ids, got dtype {edge_index.dtype}")
    edge_index = edge_index.long()
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        bad = int(((edge_index < 0) | (edge_index >= n)).any(0).sum())
        raise DataValidationError(f"{name}: {bad} edges refer to node ids outside 0..{n - 1} (ids range over "
                                  f"[{int(edge_index.min())}, {int(edge_index.max())}]); renumber the nodes "
                                  "0..N-1 or drop those edges")
    masks = {}
    for m in ("train_mask", "val_mask", "test_mask"):
        mask = getattr(graph, m)
        if mask.dtype != torch.bool or mask.shape != (n,):
            raise DataValidationError(f"{name}: {m} must be a boolean vector of length N = {n}, got "
                                      f"{mask.dtype} {tuple(mask.shape)}; index lists convert with "
                                      "torch_geometric.utils.index_to_mask")
        if not mask.any():
            raise DataValidationError(f"{name}: {m} selects no node; every split needs at least one node")
        masks[m] = mask
    if (masks["train_mask"] & masks["test_mask"]).any():
        raise DataValidationError(f"{name}: {int((masks['train_mask'] & masks['test_mask']).sum())} nodes are in "
                                  "both train_mask and test_mask; the splits must be disjoint")
    edge_index, _ = remove_self_loops(edge_index)
    if edge_index.shape[1] != graph.edge_index.shape[1]:
        warnings.warn(f"{name}: removed {graph.edge_index.shape[1] - edge_index.shape[1]} self loops (GCN "
                      "normalisation adds its own)", stacklevel=2)
    if undirected and not is_undirected(edge_index, num_nodes=n):
        warnings.warn(f"{name}: edge_index is directed ({edge_index.shape[1]} edges); symmetrised it by adding the "
                      "reverse of every edge, as graph condensation expects an undirected graph", stacklevel=2)
        edge_index = to_undirected(edge_index, num_nodes=n)
    before = edge_index.shape[1]
    edge_index = coalesce(edge_index, num_nodes=n)
    if edge_index.shape[1] != before:
        warnings.warn(f"{name}: removed {before - edge_index.shape[1]} duplicate edges", stacklevel=2)
    deg = torch.bincount(edge_index[0], minlength=n)
    isolated = int((deg == 0).sum())
    if isolated:
        warnings.warn(f"{name}: {isolated} of {n} nodes are isolated (no edge); they are kept and see only "
                      "their own features", stacklevel=2)
    x = x.float()
    if not torch.isfinite(x).all():
        raise DataValidationError(f"{name}: x has NaN/Inf values; clean or impute them before distilling")
    return Data(x=x, y=y.long(), edge_index=edge_index, num_nodes=n, **masks)


def row_normalize(x: Tensor) -> Tensor:
    """Rows scaled to sum 1 (PyG's ``NormalizeFeatures``, GCond's ``normalize_features``); zero rows stay zero."""
    return x / x.sum(1, keepdim=True).clamp_min(1e-12)


# -- loaders ------------------------------------------------------------------------------------------------------
def _planetoid_root(root: str | None) -> Path:
    candidates = [root] if root else [os.environ.get(ROOT_ENV), str(Path.cwd().parent / "shared/data/planetoid")]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    raise DataValidationError(
        "cannot find the Planetoid citation graphs: pass --root DIR (a folder holding Cora/raw and CiteSeer/raw in "
        f"the raw Planetoid layout) or set {ROOT_ENV}; tried {[c for c in candidates if c]}")


def _load_planetoid(name: str, root: str | None) -> Data:
    from torch_geometric.datasets import Planetoid

    folder = PLANETOID[name]
    source = _planetoid_root(root)
    raw = source / folder / "raw"
    if not raw.is_dir():
        raise DataValidationError(f"{raw} does not exist; --root must hold {folder}/raw with the ind.{name}.* files")
    # Planetoid writes processed/ next to raw/: work on a private copy so that the source can be read-only
    key = hashlib.sha1(str(raw.resolve()).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"distill-graph-{os.getuid() if hasattr(os, 'getuid') else 0}" / key
    target = cache / folder / "raw"
    if not target.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache))
        shutil.copytree(raw, staging / "raw")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging / "raw", target)
        except OSError:  # another process won the race; its copy is as good
            pass
        shutil.rmtree(staging, ignore_errors=True)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        graph = Planetoid(str(cache), folder)[0]
    graph.x = row_normalize(graph.x)
    return graph


def _load_karate() -> Data:
    """KarateClub (34 nodes, 4 classes, built into torch_geometric) with a fixed split: per class the 2 lowest node
    ids train, the next one validates, the rest test."""
    from torch_geometric.datasets import KarateClub

    graph = KarateClub()[0]
    n = graph.num_nodes
    train, val, test = (torch.zeros(n, dtype=torch.bool) for _ in range(3))
    for c in range(int(graph.y.max()) + 1):
        ids = (graph.y == c).nonzero().flatten()
        train[ids[:2]] = True
        val[ids[2:3]] = True
        test[ids[3:]] = True
    return Data(x=graph.x, y=graph.y, edge_index=graph.edge_index, train_mask=train, val_mask=val, test_mask=test)


def make_sbm_graph(*, num_classes: int = 4, nodes_per_class: int = 100, vocab: int = 64, words: int = 8,
                   topic_words: int = 8, noise: float = 0.75, p_in: float = 0.04, p_out: float = 0.01,
                   train_per_class: int = 20, val_per_class: int = 20, seed: int = 0) -> Data:
    """A seeded citation-like graph: stochastic-block-model edges (one block per class) and row-normalised
    bag-of-words features.

    Each node draws ``words`` words: with probability ``1 - noise`` from its class's ``topic_words`` topic words, else
    uniformly from the ``vocab``. Features alone are weakly informative and neighbourhoods are homophilous, as in
    Cora: a small, quick stand-in for a citation graph in tests.
    """
    from torch_geometric.utils import stochastic_blockmodel_graph

    g = torch.Generator().manual_seed(seed)
    sizes = [nodes_per_class] * num_classes
    probs = torch.full((num_classes, num_classes), p_out)
    probs.fill_diagonal_(p_in)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        edge_index = stochastic_blockmodel_graph(sizes, probs, directed=False)
    finally:
        torch.random.set_rng_state(state)
    y = torch.arange(num_classes).repeat_interleave(nodes_per_class)
    n = len(y)
    topics = torch.stack([torch.randperm(vocab, generator=g)[:topic_words] for _ in range(num_classes)])
    from_topic = torch.rand(n, words, generator=g) >= noise
    topic_pick = topics[y][torch.arange(n)[:, None], torch.randint(0, topic_words, (n, words), generator=g)]
    uniform_pick = torch.randint(0, vocab, (n, words), generator=g)
    chosen = torch.where(from_topic, topic_pick, uniform_pick)
    x = torch.zeros(n, vocab).scatter_(1, chosen, 1.0)
    x = row_normalize(x)
    train, val, test = (torch.zeros(n, dtype=torch.bool) for _ in range(3))
    for c in range(num_classes):
        ids = (y == c).nonzero().flatten()
        ids = ids[torch.randperm(len(ids), generator=g)]
        train[ids[:train_per_class]] = True
        val[ids[train_per_class:train_per_class + val_per_class]] = True
        test[ids[train_per_class + val_per_class:]] = True
    return Data(x=x, y=y, edge_index=edge_index, train_mask=train, val_mask=val, test_mask=test)


def _load_npz(path: str) -> Data:
    file = Path(path)
    if not file.is_file():
        raise DataValidationError(f"npz:{path}: no such file; give the path of a .npz holding x, edge_index, y and "
                                  "train_mask/val_mask/test_mask")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise DataValidationError(f"npz:{path} cannot be read as a .npz file ({exc})") from exc
    needed = ["x", "edge_index", "y", "train_mask", "val_mask", "test_mask"]
    absent = [k for k in needed if k not in arrays]
    if absent:
        raise DataValidationError(f"npz:{path} lacks the arrays {absent} (it holds {sorted(arrays)}); save it with "
                                  "np.savez(path, x=..., edge_index=..., y=..., train_mask=..., val_mask=..., "
                                  "test_mask=...)")
    return Data(**{k: torch.from_numpy(np.asarray(arrays[k])) for k in needed})


def _load_pyg(path: str) -> Data:
    file = Path(path)
    if not file.is_file():
        raise DataValidationError(f"pyg:{path}: no such file; save a graph with torch.save(data, path)")
    # a saved Data object is a pickle: only load files you trust
    obj = torch.load(file, weights_only=False)
    if not isinstance(obj, Data):
        raise DataValidationError(f"pyg:{path} holds a {type(obj).__name__}, not a torch_geometric.data.Data")
    return obj


def npz_has_graph(path: str) -> bool:
    """True when ``path`` is a readable .npz with an ``edge_index`` array (vision ``.npz`` files have none)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "edge_index" in npz.files
    except Exception:
        return False


def load_graph(spec: str, *, root: str | None = None) -> Data:
    """The validated graph named by ``spec``: ``cora``, ``citeseer``, ``karate``, ``sbm``, ``npz:PATH`` or
    ``pyg:PATH``."""
    if spec in PLANETOID:
        graph = _load_planetoid(spec, root)
    elif spec == "karate":
        graph = _load_karate()
    elif spec == "sbm":
        graph = make_sbm_graph()
    elif spec.startswith("npz:"):
        graph = _load_npz(spec[4:])
    elif spec.startswith("pyg:"):
        graph = _load_pyg(spec[4:])
    else:
        raise UnknownNameError("graph dataset", spec, [*DATASETS, "npz:PATH", "pyg:PATH"])
    return validate_graph(graph, name=spec)


def real_data_from_graph(graph: Data, *, name: str, inductive: bool = False,
                         preprocessing: Preprocessing | None = None) -> RealData:
    """The :class:`RealData` view of a validated graph (see the module docstring).

    Args:
        graph: a graph as returned by :func:`validate_graph`.
        name: dataset name stored with artifacts.
        inductive: condense from the subgraph induced by the training nodes only (the test graph stays whole).
        preprocessing: kept for the core's bookkeeping (row normalisation is applied by the loaders).
    """
    num_classes = int(graph.y.max()) + 1
    train, test = graph.train_mask, graph.test_mask
    data = RealData(name, graph.x[train], graph.y[train], graph.x[test], graph.y[test], num_classes,
                    preprocessing=preprocessing or Preprocessing())
    data.extra["graph"] = graph
    data.extra["ratio_base"] = int(graph.num_nodes)
    data.extra["inductive"] = inductive
    return data


# -- cached operators of the real graph ---------------------------------------------------------------------------
class GraphContext:
    """Derived tensors of a real graph, computed once per :class:`RealData`: sparse operators, sparse features,
    propagated features, the (condensation) training graph for the transductive or inductive setting."""

    def __init__(self, data: RealData, device: torch.device | str = "cpu") -> None:
        from .graph import Propagation, to_sparse_x

        graph: Data = data.extra["graph"].to(device)
        self.device = torch.device(device)
        self.graph = graph
        self.num_nodes = int(graph.num_nodes)
        self.train_nodes = graph.train_mask.nonzero().flatten()
        self.val_nodes = graph.val_mask.nonzero().flatten()
        self.test_nodes = graph.test_mask.nonzero().flatten()
        self.full = Propagation.from_edges(graph.edge_index, self.num_nodes)
        self.x_sparse = to_sparse_x(graph.x)
        self._store: dict[str, Any] = {}
        self.inductive = bool(data.extra.get("inductive", False))

    def cached(self, key: str, build: Any) -> Any:
        if key not in self._store:
            self._store[key] = build()
        return self._store[key]


def graph_context(data: RealData, device: torch.device | str = "cpu") -> GraphContext:
    """The :class:`GraphContext` of ``data`` on ``device`` (built on first use and kept in ``data.extra``)."""
    if "graph" not in data.extra:
        raise DataValidationError(f"{data.name} is not a graph dataset (no extra['graph']); load it with the graph "
                                  "modality")
    key = f"_graph_context:{torch.device(device)}"
    ctx = data.extra.get(key)
    if ctx is None:
        ctx = GraphContext(data, device)
        data.extra[key] = ctx
    return ctx
