"""Graphs as the distillers see them: loading (Planetoid citation graphs, downloaded when missing; KarateClub; a
seeded SBM graph; users' ``.npz`` files and saved PyG ``Data``), validation with clear errors, and the
:class:`RealData` view.

No file is unpickled with code: the raw Planetoid pickles go through a restricted unpickler
(:mod:`distill_graph.planetoid`), ``pyg:`` files through ``torch.load(weights_only=True)``, ``.npz`` files are read
without pickle; nothing is cached, and only missing raw Planetoid files are written (downloaded and checksummed by
:mod:`distill_core.download`). Damaged or foreign files are one-line errors (``DataValidationError``).

A node-classification graph becomes a :class:`~distill_core.data.RealData` whose ``x_train``/``y_train`` are the
features and labels of the training nodes (so the core's validation, class index and budgets work unchanged) and
whose ``x_test``/``y_test`` are the test nodes. The graph itself (a ``torch_geometric.data.Data`` with a symmetric
``edge_index`` and ``train_mask``/``val_mask``/``test_mask``) is ``data.extra["graph"]``; ``extra["ratio_base"]``
is the number of nodes, so that ``--ratio`` is a fraction of the whole graph, as in GCond's tables.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
from torch_geometric.data.storage import GlobalStorage
from torch_geometric.utils import coalesce, is_undirected, remove_self_loops, to_undirected

from distill_core.data import RealData
from distill_core.download import DatasetSpec, RemoteFile, ensure_dataset, register_dataset
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.paths import user_data_dir
from distill_core.preprocessing import Preprocessing
from distill_core.safe_numpy import is_file, npz_keys, one_line, read_npz

from .planetoid import read_planetoid

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
PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
DATASETS = ["citeseer", "cora", "karate", "pubmed", "sbm"]
ROOT_ENV = "DISTILL_PLANETOID_ROOT"

# -- downloads ----------------------------------------------------------------------------------------------------
# The raw Planetoid files come from the URL torch_geometric's own Planetoid downloads from (Planetoid.url, the
# authors' repository), fetched by distill_core.download rather than by Planetoid(download=True): PyG's download has
# no checksum, and PyG then unpickles the files and torch.load's its processed cache, which distill never does.
# sha256: Cora and CiteSeer computed from byte-for-byte copies of the files of kimiyoung/planetoid at af6abf4;
# PubMed's from the files of kimiyoung/planetoid at af6abf4 except ind.pubmed.allx (over 4 MiB, not readable
# offline): unverified, logged as such when downloaded.
_PLANETOID_URL = "https://github.com/kimiyoung/planetoid/raw/master/data"
_PLANETOID_SHA256: dict[str, dict[str, str | None]] = {
    "cora": {
        "x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
        "ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    },
    "citeseer": {
        "x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
        "ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    },
    "pubmed": {
        "x": "fbe9cb5c47200d1b7769a26e579be3b7130b556831f9d850e77c4c74f2599b33",
        "tx": "4eb5f5d0f30f26497eb0ac6ac9719d09c67e284f1ed0385c93f3ef27a671da3d",
        "allx": None,
        "y": "e6c807633307a07ed659249006536a147c7999c797f11a2560752990181b41b3",
        "ty": "ee2e0d4819d9fbcc403689c3bf2e49face401b605932f093bc58ab6461130fdd",
        "ally": "0c37bbe3b5014ec365e9d393cf4791925e5ed94fb194305d74f064a8d7b50f0e",
        "graph": "5b89f0036ca22909471f1e6558eb42fa06e0c730a577bde5b058b40638f81dc9",
        "test.index": "b101d421688bbaecbd82e8a18f1e282378d6830f3a37666f28ebc47f844341b5",
    },
}
_PLANETOID_SIZES = {"cora": "0.6 MB", "citeseer": "1.0 MB", "pubmed": "about 40 MB"}


def _planetoid_url() -> str:
    try:  # the URL PyG itself downloads from, when PyG knows a newer one
        from torch_geometric.datasets import Planetoid

        return str(getattr(Planetoid, "url", _PLANETOID_URL)).rstrip("/")
    except ImportError:  # pragma: no cover - torch_geometric is a dependency of this package
        return _PLANETOID_URL


def _register_planetoid() -> None:
    url = _planetoid_url()
    for name, folder in PLANETOID.items():
        files = tuple(
            RemoteFile(f"{folder}/raw/ind.{name}.{part}", (f"{url}/ind.{name}.{part}",), sha256=digest,
                       checksum_source="sha256 of the verified copy of kimiyoung/planetoid (see distill_graph.data)"
                       if digest else "not verified offline (the file was not readable here)")
            for part, digest in _PLANETOID_SHA256[name].items())
        register_dataset(DatasetSpec(
            name, files,
            layout=f"{folder}/raw/ind.{name}.{{x,tx,allx,y,ty,ally,graph,test.index}} (the raw Planetoid files of "
                   "github.com/kimiyoung/planetoid, data/, unchanged)",
            licence="MIT (Planetoid split files, Yang et al. 2016); data: LINQS, research use",
            source="https://github.com/kimiyoung/planetoid",
            root_hint=f"--root DIR (or set {ROOT_ENV}) holding {folder}/raw", size=_PLANETOID_SIZES[name]))


_register_planetoid()


# -- validation ---------------------------------------------------------------------------------------------------
SPLITS = ("train_mask", "val_mask", "test_mask")
_TENSOR_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.float16,
                  torch.bfloat16, torch.float32, torch.float64)


def _plain_tensor(name: str, key: str, value: object) -> Tensor:
    """``value`` as a plain dense CPU tensor of a real dtype, or a DataValidationError naming the fix."""
    if not isinstance(value, Tensor):
        raise DataValidationError(f"{name}: {key} must be a tensor, got a {type(value).__name__}; store torch "
                                  f"tensors (e.g. torch.as_tensor({key}))")
    if type(value) is not Tensor:  # torch_geometric's EdgeIndex / Index, nn.Parameter
        as_tensor = getattr(value, "as_tensor", None)
        value = as_tensor() if callable(as_tensor) else value.as_subclass(Tensor)
    if value.layout != torch.strided:
        raise DataValidationError(f"{name}: {key} is a {value.layout} tensor; store it dense ({key}.to_dense())")
    if value.dtype in (torch.uint16, torch.uint32, torch.uint64):  # few torch ops take them: widen to int64
        wide = value.detach().cpu().numpy()
        if wide.size and int(wide.max()) > torch.iinfo(torch.int64).max:
            raise DataValidationError(f"{name}: {key} holds values beyond the int64 range; store node ids and "
                                      "labels as int64")
        value = torch.from_numpy(wide.astype(np.int64))
    if value.dtype not in _TENSOR_DTYPES:
        raise DataValidationError(f"{name}: {key} has dtype {value.dtype}; store real numbers (float32 features, "
                                  "int64 node ids and labels, bool masks)")
    return value.detach().cpu()


def _check_labels(name: str, y: Tensor, masks: dict[str, Tensor]) -> Tensor:
    """Labels of every node in a split must be class indices 0..K-1; nodes outside every split may be unlabelled
    (negative, stored as -1). Returns ``y`` as int64."""
    y = y.long()
    negative = {m: int((y[mask] < 0).sum()) for m, mask in masks.items()}
    if any(negative.values()):
        where = ", ".join(f"{count} in {m}" for m, count in negative.items() if count)
        raise DataValidationError(f"{name}: {sum(negative.values())} evaluated nodes have a negative label (-1 marks "
                                  f"an unlabelled node): {where}; every node of train_mask, val_mask and test_mask "
                                  "needs a class index 0..K-1, so label them or take them out of the masks")
    in_split = masks["train_mask"] | masks["val_mask"] | masks["test_mask"]
    classes = int(y[in_split].max()) + 1
    n_train = int(masks["train_mask"].sum())
    if classes > n_train:
        highest = {m: int(y[mask].max()) for m, mask in masks.items()}
        raise DataValidationError(f"{name}: the labels of the split nodes go up to {classes - 1} (highest per split: "
                                  f"{highest}) but only {n_train} nodes are in train_mask, so some classes have no "
                                  "training node; relabel the classes as 0..K-1 with a training node in each")
    beyond = ~in_split & (y >= classes)
    if beyond.any():
        raise DataValidationError(f"{name}: {int(beyond.sum())} nodes outside every split have labels >= {classes} "
                                  f"(up to {int(y[beyond].max())}), classes that no node of train_mask, val_mask or "
                                  f"test_mask has; relabel them within 0..{classes - 1} or mark them unlabelled (-1)")
    return torch.where(y < 0, torch.full_like(y, -1), y)


def validate_graph(graph: Data, *, name: str = "graph", undirected: bool = True) -> Data:
    """Check and normalise a node-classification graph; returns a clean copy.

    Errors (``DataValidationError``, with the fix): missing ``x``/``y``/``edge_index`` or masks, values that are not
    dense real tensors, shape mismatches, edge indices out of range, non-integer labels, empty or overlapping
    train/test masks, a negative label on a node of a split (``-1``, "unlabelled", is allowed only outside every
    split), more classes than training nodes, NaN/Inf features. Conversions with a warning: a directed edge list is
    symmetrised (``undirected=True``), self loops and duplicate edges are removed, isolated nodes are reported (they
    keep their self loop in GCN normalisation).

    Shapes:
        x: ``(N, d)``; y: ``(N,)`` (``-1`` on unlabelled nodes outside every split); edge_index: ``(2, E)``;
        masks: ``(N,)`` bool.
    """
    for key in ("x", "y", "edge_index"):
        if getattr(graph, key, None) is None:
            raise DataValidationError(f"{name}: the graph has no {key!r}; a node-classification graph needs x (N, d) "
                                      "features, y (N,) labels and edge_index (2, E)")
    missing = [m for m in SPLITS if getattr(graph, m, None) is None]
    if missing:
        raise DataValidationError(f"{name}: the graph lacks {missing}; give boolean (N,) masks for the train, "
                                  "validation and test nodes (e.g. torch_geometric.transforms.RandomNodeSplit)")
    x, y, edge_index = (_plain_tensor(name, key, getattr(graph, key)) for key in ("x", "y", "edge_index"))
    if x.dim() != 2:
        raise DataValidationError(f"{name}: x must be (N, d) node features, got shape {tuple(x.shape)}")
    n = len(x)
    if not x.shape[1]:
        raise DataValidationError(f"{name}: x has no feature columns (shape {tuple(x.shape)}); give at least one "
                                  "feature per node (e.g. a constant 1 or the one-hot node id)")
    if y.dim() != 1 or len(y) != n:
        raise DataValidationError(f"{name}: y must be (N,) = ({n},) class indices, got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise DataValidationError(f"{name}: y must hold integer class indices, got dtype {y.dtype}")
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise DataValidationError(f"{name}: edge_index must be (2, E), got shape {tuple(edge_index.shape)}; "
                                  "transpose an (E, 2) edge list")
    if edge_index.dtype.is_floating_point or edge_index.dtype == torch.bool:
        raise DataValidationError(f"{name}: edge_index must hold integer node ids, got dtype {edge_index.dtype}")
    raw_edges = edge_index.shape[1]
    edge_index = edge_index.long()
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        bad = int(((edge_index < 0) | (edge_index >= n)).any(0).sum())
        raise DataValidationError(f"{name}: {bad} edges refer to node ids outside 0..{n - 1} (ids range over "
                                  f"[{int(edge_index.min())}, {int(edge_index.max())}]); renumber the nodes "
                                  "0..N-1 or drop those edges")
    masks = {}
    for m in SPLITS:
        mask = _plain_tensor(name, m, getattr(graph, m))
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
    y = _check_labels(name, y, masks)
    x = x.float()
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(1).sum())
        raise DataValidationError(f"{name}: x has NaN/Inf values in {bad} of {n} nodes (or values beyond the float32 "
                                  "range); clean or impute them before distilling")
    edge_index, _ = remove_self_loops(edge_index)
    if edge_index.shape[1] != raw_edges:
        warnings.warn(f"{name}: removed {raw_edges - edge_index.shape[1]} self loops (GCN "
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
    return Data(x=x, y=y, edge_index=edge_index, num_nodes=n, **masks)


def row_normalize(x: Tensor) -> Tensor:
    """Rows scaled to sum 1 (PyG's ``NormalizeFeatures``, GCond's ``normalize_features``); zero rows stay zero."""
    return x / x.sum(1, keepdim=True).clamp_min(1e-12)


# -- loaders ------------------------------------------------------------------------------------------------------
def _planetoid_root(root: str | None) -> Path:
    """``--root``, else ``$DISTILL_PLANETOID_ROOT``, else the user's data folder ``.../distill/planetoid``."""
    return Path(root or os.environ.get(ROOT_ENV) or str(user_data_dir("planetoid")))


def _load_planetoid(name: str, root: str | None) -> Data:
    """Cora / CiteSeer / PubMed read from the raw Planetoid files in place (nothing but the raw files is written, so
    no cache can be planted; the pickled raw files are read without running code, see :mod:`distill_graph.planetoid`),
    features row-normalised as PyG's ``NormalizeFeatures``. Files that are missing are downloaded into the same
    folder when downloads are allowed (:mod:`distill_core.download`); otherwise the error names the layout."""
    folder = PLANETOID[name]
    base = _planetoid_root(root)
    raw = base / folder / "raw"
    if not all(is_file(raw / f"ind.{name}.{part}") for part in _PLANETOID_SHA256[name]):
        ensure_dataset(name, base)
    graph = read_planetoid(raw, name)
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


# -- users' files -------------------------------------------------------------------------------------------------
# A .npz is read by distill_core.safe_numpy.read_npz, member by member with the zip and .npy headers checked before
# any array is allocated. A pyg: file is a pickle: it is read with torch.load(weights_only=True), which builds only
# tensors and the classes PyG registers as safe (Data and its storage), so a planted object never runs; an unpickling
# error is refused.

GRAPH_ARRAYS = ["x", "edge_index", "y", "train_mask", "val_mask", "test_mask"]
_NPZ_FIX = "save it with np.savez(path, x=..., edge_index=..., y=..., train_mask=..., val_mask=..., test_mask=...)"
_PYG_FIX = ("save the graph with torch.save(Data(x=..., edge_index=..., y=..., train_mask=..., val_mask=..., "
            "test_mask=...), path) holding only tensors, or save the arrays with np.savez and pass npz:PATH")
#: the classes a torch.save'd Data pickles besides Data itself (which torch_geometric registers as safe)
PYG_SAFE_GLOBALS = [Data, GlobalStorage, DataEdgeAttr, DataTensorAttr]


def _as_tensor(array: np.ndarray, where: str) -> Tensor:
    """A numpy array as a tensor of a dtype torch computes with (native byte order; unsigned ints and long doubles
    widened)."""
    if array.dtype.kind == "u" and array.dtype.itemsize > 1:
        if array.size and int(array.max()) > np.iinfo(np.int64).max:
            raise DataValidationError(f"{where} holds values beyond the int64 range; store node ids and labels as "
                                      "int64")
        array = array.astype(np.int64)
    elif array.dtype.kind == "f" and array.dtype.itemsize > 8:
        array = array.astype(np.float64)
    else:
        array = array.astype(array.dtype.newbyteorder("="))
    return torch.from_numpy(np.ascontiguousarray(array))


def _load_npz(path: str) -> Data:
    arrays = read_npz(Path(path), GRAPH_ARRAYS, label=f"npz:{path}", fix=_NPZ_FIX)
    return Data(**{k: _as_tensor(arrays[k], f"npz:{path}: array {k!r}") for k in GRAPH_ARRAYS})


def _unpickling_reason(exc: BaseException) -> str:
    """The one line of a torch.load failure that says what was refused (torch's own message suggests loading with
    ``weights_only=False``, which is exactly what must not be done with a file of unknown origin)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1]
        reason = reason.split("Please use", 1)[0].split("Check the documentation", 1)[0]
        return "refused by the safe loader: " + " ".join(reason.split())[:200]
    return one_line(exc)


def _load_pyg(path: str) -> Data:
    """A ``torch.save``'d ``Data``, unpickled with ``torch.load(weights_only=True)`` and only the PyG classes a
    ``Data`` pickles (:data:`PYG_SAFE_GLOBALS`) allowed: any other object in the file is refused before it is built
    (a planted pickle never runs). Only the tensors of the graph's store are kept."""
    file = Path(path)
    if not is_file(file):
        raise DataValidationError(f"pyg:{path}: no such file; save a graph with torch.save(data, path)")
    try:
        with torch.serialization.safe_globals(PYG_SAFE_GLOBALS), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error below says it all
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or planted file fails in many ways, all of them this one problem
        raise DataValidationError(f"pyg:{path} is not a saved torch_geometric Data of tensors "
                                  f"({_unpickling_reason(exc)}); pyg: files are read with "
                                  f"torch.load(weights_only=True), so they may hold only tensors and PyG's Data: "
                                  f"{_PYG_FIX}") from None
    if not isinstance(obj, Data):
        raise DataValidationError(f"pyg:{path} holds a {type(obj).__name__}, not a torch_geometric.data.Data; "
                                  f"{_PYG_FIX}")
    store = obj.__dict__.get("_store")  # read the state directly: no method of the unpickled object runs
    mapping = store.__dict__.get("_mapping") if isinstance(store, GlobalStorage) else None
    if not isinstance(mapping, dict):
        raise DataValidationError(f"pyg:{path} holds a Data without its attribute store (saved by a PyG older than "
                                  f"2.0, or damaged); {_PYG_FIX}")
    return Data(**{k: mapping.get(k) for k in GRAPH_ARRAYS})


def npz_has_graph(path: str) -> bool:
    """True when ``path`` is a readable .npz with an ``edge_index`` array (vision ``.npz`` files have none); reads
    only the zip directory and never raises."""
    return "edge_index" in (npz_keys(path) or [])


def load_graph(spec: str, *, root: str | None = None) -> Data:
    """The validated graph named by ``spec``: ``cora``, ``citeseer``, ``pubmed``, ``karate``, ``sbm``, ``npz:PATH`` or
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
