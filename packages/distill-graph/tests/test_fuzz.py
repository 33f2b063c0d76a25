"""Fuzz the graph loaders (``npz:`` graphs and ``pyg:`` files) through the graph modality's public path, as the CLI
calls it (``claims(spec)`` then ``load_dataset(spec, root=...)``): random bytes, truncations and corruptions of a
valid file, random shapes and dtypes, NaN placements, bad edge indices and labels; and the raw Planetoid pickles
of ``cora`` (random, truncated or bit-flipped files in a tiny synthetic release).

Every case runs in :func:`distill_core.fuzz.sandbox` (nothing may be written outside the input folder) and through
:func:`distill_core.fuzz.only_distill_errors` (anything but a DistillError fails). Each property covers both file
formats. ``DISTILL_FUZZ_PROFILE=thorough`` runs many more cases; ``--hypothesis-show-statistics`` prints how many ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch_geometric.data import Data

from distill_core.data import RealData
from distill_core.fuzz import load_profile, only_distill_errors, sandbox
from distill_graph.modality import GraphModality

load_profile()
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # directed / isolated / self-loop notes

MODALITY = GraphModality()
FORMATS = st.sampled_from(["npz", "pyg"])
KEYS = ["x", "edge_index", "y", "train_mask", "val_mask", "test_mask"]
NODES = 12  # 3 classes x 4 nodes: 2 train, 1 val, 1 test each


def _valid() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    role = np.tile([0, 0, 1, 2], 3)
    edges = rng.integers(0, NODES, (2, 20))
    return {"x": rng.random((NODES, 5)).astype(np.float32), "edge_index": edges, "y": y,
            "train_mask": role == 0, "val_mask": role == 1, "test_mask": role == 2}


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(array.dtype.newbyteorder("=")))


def _write(folder: Path, fmt: str, arrays: dict[str, Any]) -> str:
    """Save ``arrays`` (numpy arrays, tensors or other objects) as a ``.npz`` or a torch.save'd ``Data``."""
    if fmt == "npz":
        path = folder / "g.npz"
        with open(path, "wb") as handle:
            np.savez(handle, **{k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in arrays.items()})
    else:
        path = folder / "g.pt"
        torch.save(Data(**{k: _tensor(v) if isinstance(v, np.ndarray) else v for k, v in arrays.items()}), path)
    return f"{fmt}:{path}"


def _load(spec: str, folder: Path) -> Any:
    """The CLI's path: the modality claims the spec (never raising), then loads it; checks what loads."""
    claimed = MODALITY.claims(spec)
    assert isinstance(claimed, bool)
    result = only_distill_errors(MODALITY.load_dataset, spec, root=str(folder))
    if not isinstance(result, Exception):
        assert claimed and isinstance(result, RealData)
        graph = result.extra["graph"]
        n = int(graph.num_nodes)
        assert torch.isfinite(graph.x).all() and graph.x.dtype == torch.float32 and graph.x.shape[0] == n
        assert graph.edge_index.numel() == 0 or (graph.edge_index.min() >= 0 and graph.edge_index.max() < n)
        for y in (result.y_train, result.y_test):
            assert y.min() >= 0 and y.max() < result.num_classes
        assert result.num_classes <= len(result.y_train)
    return result


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("valid")
    out = {}
    for fmt in ("npz", "pyg"):
        spec = _write(folder, fmt, _valid())
        out[fmt] = Path(spec[4:]).read_bytes()
        assert isinstance(MODALITY.load_dataset(spec), RealData)
    return out


@given(fmt=FORMATS, data=st.binary(max_size=400))
def test_random_bytes(fmt: str, data: bytes) -> None:
    with sandbox() as folder:
        path = folder / f"g.{fmt}"
        path.write_bytes(data)
        assert isinstance(_load(f"{fmt}:{path}", folder), Exception)


@given(fmt=FORMATS, cut=st.floats(0, 1, exclude_max=True))
def test_truncations(valid_files: dict[str, bytes], fmt: str, cut: float) -> None:
    with sandbox() as folder:
        path = folder / f"g.{fmt}"
        data = valid_files[fmt]
        path.write_bytes(data[: int(cut * len(data))])
        assert isinstance(_load(f"{fmt}:{path}", folder), Exception)


@given(fmt=FORMATS, flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1,
                                   max_size=4))
def test_corrupted_bytes(valid_files: dict[str, bytes], fmt: str, flips: list[tuple[float, int]]) -> None:
    with sandbox() as folder:
        path = folder / f"g.{fmt}"
        data = bytearray(valid_files[fmt])
        for where, mask in flips:
            data[int(where * len(data))] ^= mask
        path.write_bytes(bytes(data))
        _load(f"{fmt}:{path}", folder)


_NP_DTYPES = ["float16", "float32", "float64", "longdouble", "int8", "int16", "int32", "int64", "uint8", "uint16",
              "uint32", "uint64", "bool", "complex64", ">f8", ">i4", "<U2", "S2", "datetime64[s]", "object"]
_TORCH_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
                 torch.int64, torch.uint8, torch.bool, torch.complex64]


@given(fmt=FORMATS, key=st.sampled_from(KEYS), shape=st.lists(st.integers(0, 14), max_size=3),
       np_dtype=st.sampled_from(_NP_DTYPES), torch_dtype=st.sampled_from(_TORCH_DTYPES),
       low=st.integers(-3, 3), high=st.integers(0, 20), seed=st.integers(0, 2**16),
       other=st.sampled_from([None, "tensor", "list", "text", "array", "sparse"]))
def test_random_shapes_and_dtypes(fmt: str, key: str, shape: list[int], np_dtype: str, torch_dtype: torch.dtype,
                                  low: int, high: int, seed: int, other: str | None) -> None:
    arrays: dict[str, Any] = _valid()
    values = np.random.default_rng(seed).integers(low, low + high + 1, shape)
    if fmt == "npz":
        arrays[key] = values.astype(np_dtype) if np_dtype != "object" else values.astype(object)
    elif other in (None, "tensor"):
        arrays[key] = torch.from_numpy(values).to(torch_dtype)
    else:
        arrays[key] = {"list": values.tolist(), "text": "abc", "array": values,
                       "sparse": torch.from_numpy(values).to(torch_dtype).to_sparse()}[other]
    with sandbox() as folder:
        _load(_write(folder, fmt, arrays), folder)


@given(fmt=FORMATS, cells=st.lists(st.tuples(st.integers(0, NODES - 1), st.integers(0, 4),
                                             st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e39])),
                                   max_size=4), dtype=st.sampled_from(["float32", "float64", "float16", ">f4", ">f8"]))
def test_nan_placements(fmt: str, cells: list[tuple[int, int, float]], dtype: str) -> None:
    arrays = _valid()
    x = arrays["x"].astype(dtype)
    with np.errstate(over="ignore"):
        for row, col, value in cells:
            x[row, col] = value
    arrays["x"] = x
    with sandbox() as folder:
        result = _load(_write(folder, fmt, arrays), folder)
        with np.errstate(over="ignore"):
            finite = np.isfinite(x.astype(np.float32)).all()
        assert isinstance(result, Exception) == (not finite)


@given(fmt=FORMATS, edges=st.lists(st.tuples(st.integers(-3, NODES + 3), st.integers(-3, NODES + 3)), max_size=30),
       dtype=st.sampled_from(["int64", "int32", "int8", "uint8", "uint16", "uint32", "uint64", ">i8"]))
def test_bad_edge_indices(fmt: str, edges: list[tuple[int, int]], dtype: str) -> None:
    arrays = _valid()
    edge_index = np.array(edges, dtype=np.int64).reshape(-1, 2).T
    arrays["edge_index"] = edge_index.astype(dtype)
    stored = edge_index.astype(dtype).astype(np.int64)
    with sandbox() as folder:
        result = _load(_write(folder, fmt, arrays), folder)
        in_range = stored.size == 0 or (stored.min() >= 0 and stored.max() < NODES)
        assert isinstance(result, Exception) == (not in_range)


@given(fmt=FORMATS, labels=st.lists(st.integers(-2, 14), min_size=NODES, max_size=NODES),
       roles=st.lists(st.integers(0, 3), min_size=NODES, max_size=NODES))
def test_labels_and_splits(fmt: str, labels: list[int], roles: list[int]) -> None:
    arrays = _valid()
    role = np.array(roles)
    arrays.update(y=np.array(labels), train_mask=role == 0, val_mask=role == 1, test_mask=role == 2)
    with sandbox() as folder:
        result = _load(_write(folder, fmt, arrays), folder)
        y = np.array(labels)
        if not isinstance(result, Exception):  # every node of a split is labelled, every class has a training node
            assert (y[role < 3] >= 0).all()
            assert set(y[role < 3]) <= set(y[role == 0]) or result.num_classes <= (role == 0).sum()


_PLANETOID_FILES = [f"ind.cora.{part}" for part in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")]


@pytest.fixture(scope="module")
def planetoid_files(tmp_path_factory: pytest.TempPathFactory, write_planetoid: Any) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("planetoid") / "Cora" / "raw"
    write_planetoid(folder, "cora")
    return {name: (folder / name).read_bytes() for name in _PLANETOID_FILES}


@given(name=st.sampled_from(_PLANETOID_FILES), how=st.sampled_from(["random", "truncate", "flip"]),
       data=st.binary(max_size=300), where=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_planetoid_raw_files(planetoid_files: dict[str, bytes], name: str, how: str, data: bytes, where: float,
                             mask: int) -> None:
    with sandbox() as folder:
        raw = folder / "Cora" / "raw"
        raw.mkdir(parents=True)
        for file, content in planetoid_files.items():
            (raw / file).write_bytes(content)
        good = planetoid_files[name]
        if how == "random":
            bad = data
        elif how == "truncate":
            bad = good[: int(where * len(good))]
        else:
            bad = bytearray(good)
            bad[int(where * len(good))] ^= mask
        (raw / name).write_bytes(bytes(bad))
        assert MODALITY.claims("cora")
        result = only_distill_errors(MODALITY.load_dataset, "cora", root=str(folder))
        if not isinstance(result, Exception):
            assert torch.isfinite(result.x_train).all() and result.num_classes <= len(result.y_train)
