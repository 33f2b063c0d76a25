"""Safe by default: no file the graph loaders read runs code, nothing is cached where another user could plant it,
labels of evaluated nodes are checked, and damaged files are one-line errors."""

from __future__ import annotations

import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from distill_core.errors import DataValidationError
from distill_graph.data import load_graph, make_sbm_graph, validate_graph
from distill_graph.modality import GraphModality

ARRAYS = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")


class _Payload:
    """Unpickling this runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _tiny(**changes: Any) -> Data:
    graph = make_sbm_graph(num_classes=3, nodes_per_class=10, vocab=12, topic_words=3, p_in=0.5, p_out=0.05,
                           train_per_class=3, val_per_class=2)
    for key, value in changes.items():
        setattr(graph, key, value)
    return graph


def _quiet_validate(graph: Data) -> Data:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return validate_graph(graph)


# -- pyg: files are never unpickled with code ---------------------------------------------------------------------
@pytest.mark.parametrize("how", ["torch.save", "pickle", "inside a Data"])
def test_planted_pyg_file_is_refused_and_never_runs(tmp_path: Path, how: str) -> None:
    file, marker = tmp_path / "graph.pt", tmp_path / "pwned"
    if how == "torch.save":
        torch.save({"graph": _Payload(marker)}, file)
    elif how == "pickle":
        file.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save(_tiny(x=_Payload(marker)), file)
    with pytest.raises(DataValidationError, match=r"graph\.pt is not a saved torch_geometric Data.*weights_only=True"):
        load_graph(f"pyg:{file}")
    assert not marker.exists()


def test_planted_pyg_dataset_of_an_artifact_is_refused_by_distill_eval(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from distill_core.artifact import Artifact
    from distill_core.cli import main
    from distill_graph.summary import GraphSummary

    file, marker = tmp_path / "graph.pt", tmp_path / "pwned"
    torch.save({"graph": _Payload(marker)}, file)
    summary = GraphSummary(x=torch.randn(6, 12, generator=torch.Generator().manual_seed(0)),
                           labels=torch.arange(3).repeat(2), num_classes=3)
    out = tmp_path / "artifact"
    Artifact(summary=summary, method="random", modality="graph", dataset={"name": f"pyg:{file}"}).save(out)
    assert main(["eval", str(out)]) == 2
    assert "weights_only=True" in capsys.readouterr().err
    assert not marker.exists()


def test_genuine_pyg_data_still_loads(tmp_path: Path) -> None:
    graph = _tiny()
    torch.save(graph, tmp_path / "graph.pt")
    loaded = load_graph(f"pyg:{tmp_path / 'graph.pt'}")
    expected = _quiet_validate(graph)
    assert all(torch.equal(getattr(loaded, k), getattr(expected, k)) for k in ARRAYS)


# -- Planetoid: raw files read without code, nothing cached ---------------------------------------------------------
@pytest.mark.parametrize("name", ["cora", "citeseer"])
def test_planetoid_reader_matches_torch_geometric(tmp_path: Path, name: str, write_planetoid: Any) -> None:
    from torch_geometric.io import read_planetoid_data

    from distill_graph.planetoid import read_planetoid

    write_planetoid(tmp_path, name, gap=name == "citeseer")
    mine = read_planetoid(tmp_path, name)
    reference = read_planetoid_data(str(tmp_path), name)  # our own files: pickle.load is safe on them
    for key in ARRAYS:
        assert torch.equal(getattr(mine, key), getattr(reference, key)), key


@pytest.mark.parametrize("part", ["x", "graph", "ty"])
def test_planted_planetoid_file_is_refused_and_never_runs(tmp_path: Path, part: str, monkeypatch: pytest.MonkeyPatch,
                                                          write_planetoid: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    root, marker = tmp_path / "data", tmp_path / "pwned"
    write_planetoid(root / "Cora" / "raw", "cora")
    (root / "Cora" / "raw" / f"ind.cora.{part}").write_bytes(pickle.dumps({"m": _Payload(marker)}, protocol=2))
    with pytest.raises(DataValidationError, match=rf"ind\.cora\.{part} is not a raw Planetoid file: it references "
                                                  r".*refused, never imported or run"):
        load_graph("cora", root=str(root))
    assert not marker.exists()


def test_planetoid_loads_in_place_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     write_planetoid: Any) -> None:
    # the old loader copied the files to TMP/distill-graph-UID/ (which another user can create first) and let
    # torch-geometric write and re-read a pickled processed/ file there; now nothing is written anywhere
    for var in ("XDG_CACHE_HOME", "HOME"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    root = tmp_path / "data"
    write_planetoid(root / "Cora" / "raw", "cora")
    before = sorted(p.name for p in (root / "Cora").rglob("*"))
    data = GraphModality().load_dataset("cora", root=str(root))
    assert len(data.x_train) == 4 and data.extra["ratio_base"] == 520
    assert sorted(p.name for p in (root / "Cora").rglob("*")) == before
    assert not [p for var in ("XDG_CACHE_HOME", "HOME", "tmp") for p in (tmp_path / var).rglob("*")]


def test_planetoid_default_root_is_the_user_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        write_planetoid: Any) -> None:
    monkeypatch.delenv("DISTILL_PLANETOID_ROOT", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    write_planetoid(tmp_path / "shared" / "data" / "planetoid" / "Cora" / "raw", "cora")  # never looked at
    with pytest.raises(DataValidationError, match=f"put them in {tmp_path / 'share' / 'distill' / 'planetoid'}"):
        load_graph("cora")
    write_planetoid(tmp_path / "share" / "distill" / "planetoid" / "Cora" / "raw", "cora")
    assert load_graph("cora").num_nodes == 520


# -- labels of evaluated nodes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["train_mask", "val_mask", "test_mask"])
def test_unlabelled_node_in_a_split_is_refused(split: str) -> None:
    graph = _tiny()
    y = graph.y.clone()
    y[getattr(graph, split).nonzero().flatten()[:2]] = -1
    graph.y = y
    with pytest.raises(DataValidationError, match=rf"2 evaluated nodes have a negative label.*2 in {split}"):
        validate_graph(graph)


def test_label_beyond_the_training_classes_is_refused() -> None:
    graph = _tiny()
    y = graph.y.clone()
    y[graph.test_mask.nonzero().flatten()[0]] = 10**9  # would ask for a billion classes
    graph.y = y
    with pytest.raises(DataValidationError, match=r"go up to 1000000000.*only 9 nodes are in train_mask"):
        validate_graph(graph)


def test_unlabelled_nodes_outside_every_split_are_kept() -> None:
    from distill_core.evaluation import EvalProtocol
    from distill_graph.data import real_data_from_graph
    from distill_graph.training import whole_graph_accuracy

    graph = _tiny()
    graph.test_mask = graph.test_mask.clone()
    graph.test_mask[graph.test_mask.nonzero().flatten()[:3]] = False  # 3 nodes outside every split
    outside = ~(graph.train_mask | graph.val_mask | graph.test_mask)
    y = graph.y.clone()
    y[outside] = -1
    graph.y = y
    clean = _quiet_validate(graph)
    assert int((clean.y == -1).sum()) == 3
    data = real_data_from_graph(clean, name="g")
    protocol = EvalProtocol(model="gcn", model_kwargs={"hidden": 8}, epochs=2, n_models=1, selection="best_val")
    assert len(whole_graph_accuracy(data, protocol)) == 1  # one-hot targets of the unlabelled nodes are zero

    y[outside.nonzero().flatten()[0]] = 7  # a class that no split node has
    graph.y = y
    with pytest.raises(DataValidationError, match="1 nodes outside every split have labels >= 3"):
        validate_graph(graph)


# -- damaged files: one line, never a traceback -------------------------------------------------------------------
def _damaged(kind: str, valid: bytes) -> bytes:
    return {"empty": b"", "random": bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
            "truncated": valid[: len(valid) // 2]}[kind]


@pytest.mark.parametrize("kind", ["empty", "random", "truncated"])
def test_damaged_pyg_file_is_a_one_line_error(tmp_path: Path, kind: str) -> None:
    torch.save(_tiny(), tmp_path / "ok.pt")
    (tmp_path / "g.pt").write_bytes(_damaged(kind, (tmp_path / "ok.pt").read_bytes()))
    assert GraphModality().claims(f"pyg:{tmp_path / 'g.pt'}")
    with pytest.raises(DataValidationError, match=r"^pyg:\S+g\.pt is not a saved torch_geometric Data") as err:
        GraphModality().load_dataset(f"pyg:{tmp_path / 'g.pt'}")
    assert "\n" not in str(err.value)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    graph = _tiny()
    np.savez(path, **{**{k: getattr(graph, k).numpy() for k in ARRAYS}, **arrays})


@pytest.mark.parametrize(("key", "array", "message"), [
    ("x", np.array([["a", "b"]] * 30), r"array 'x' has dtype <U1"),
    ("y", np.zeros(30, dtype=np.uint64) + 2**63, r"array 'y' holds values beyond the int64 range"),
    ("edge_index", np.zeros((2, 3), dtype=np.complex64), r"array 'edge_index' has dtype complex64"),
])
def test_npz_arrays_torch_cannot_hold_are_one_line_errors(tmp_path: Path, key: str, array: np.ndarray,
                                                          message: str) -> None:
    _save_npz(tmp_path / "g.npz", **{key: array})
    with pytest.raises(DataValidationError, match=message) as err:
        load_graph(f"npz:{tmp_path / 'g.npz'}")
    assert "\n" not in str(err.value)


def test_npz_in_another_byte_order_loads(tmp_path: Path) -> None:
    graph = _tiny()
    _save_npz(tmp_path / "g.npz", x=graph.x.numpy().astype(">f8"), edge_index=graph.edge_index.numpy().astype(">i4"))
    loaded = load_graph(f"npz:{tmp_path / 'g.npz'}")
    assert torch.allclose(loaded.x, _quiet_validate(graph).x)


def test_npz_header_claiming_a_huge_array_is_refused_before_allocation(tmp_path: Path) -> None:
    import zipfile

    _save_npz(tmp_path / "g.npz")
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 4), }"
    member = b"\x93NUMPY\x01\x00" + len(header.ljust(118) + "\n").to_bytes(2, "little") \
        + (header.ljust(118) + "\n").encode() + b"\0" * 32
    with zipfile.ZipFile(tmp_path / "g.npz", "a") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate member name: the later one wins
        archive.writestr("x.npy", member)
    with pytest.raises(DataValidationError, match=r"claims shape \(1000000000000, 4\).*corrupt, truncated or crafted"):
        load_graph(f"npz:{tmp_path / 'g.npz'}")
