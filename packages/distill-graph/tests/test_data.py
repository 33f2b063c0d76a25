"""Loading and validating graphs: real citation graphs, users' files, and every bad input of the issue."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from distill_core.data import Budget, validate_real_data
from distill_core.errors import DataValidationError
from distill_graph.data import load_graph, make_sbm_graph, real_data_from_graph, validate_graph
from distill_graph.methods._base import gcond_class_sizes
from distill_graph.modality import GraphModality


def _tiny(**changes) -> Data:
    graph = make_sbm_graph(num_classes=3, nodes_per_class=10, vocab=12, topic_words=3, p_in=0.5, p_out=0.05,
                           train_per_class=3, val_per_class=2)
    for key, value in changes.items():
        setattr(graph, key, value)
    return graph


def test_missing_masks_is_an_error() -> None:
    graph = _tiny()
    del graph.val_mask
    with pytest.raises(DataValidationError, match=r"lacks \['val_mask'\].*RandomNodeSplit"):
        validate_graph(graph)


def test_edges_out_of_range_is_an_error() -> None:
    graph = _tiny()
    graph.edge_index = torch.cat([graph.edge_index, torch.tensor([[0], [30]])], 1)
    with pytest.raises(DataValidationError, match=r"outside 0\.\.29"):
        validate_graph(graph)


def test_directed_edges_are_symmetrised_with_a_warning() -> None:
    graph = _tiny(edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    with pytest.warns(UserWarning, match="directed"):
        clean = validate_graph(graph)
    assert clean.edge_index.shape[1] == 6
    assert {(0, 1), (1, 0), (3, 2)} <= set(map(tuple, clean.edge_index.t().tolist()))


def test_isolated_nodes_are_kept_with_a_warning() -> None:
    graph = _tiny(edge_index=torch.tensor([[0, 1], [1, 0]]))
    with pytest.warns(UserWarning, match="28 of 30 nodes are isolated"):
        clean = validate_graph(graph)
    assert clean.num_nodes == 30


def test_class_without_training_node_is_an_error() -> None:
    graph = _tiny()
    graph.train_mask = graph.train_mask & (graph.y != 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = real_data_from_graph(validate_graph(graph), name="g")
    with pytest.raises(DataValidationError, match="no training sample"):
        validate_real_data(data)


def test_budget_smaller_than_number_of_classes_is_an_error() -> None:
    data = real_data_from_graph(validate_graph(_tiny()), name="g")
    with pytest.raises(DataValidationError, match="smaller than the 3 classes"):
        Budget(total=2).per_class(data)


def test_overlapping_train_and_test_is_an_error() -> None:
    graph = _tiny()
    graph.test_mask = graph.test_mask | graph.train_mask
    with pytest.raises(DataValidationError, match="both train_mask and test_mask"):
        validate_graph(graph)


def test_npz_graph_is_claimed_and_loaded(tmp_path) -> None:
    graph = _tiny()
    path = tmp_path / "g.npz"
    np.savez(path, **{k: getattr(graph, k).numpy() for k in ("x", "edge_index", "y", "train_mask", "val_mask",
                                                             "test_mask")})
    images = tmp_path / "images.npz"
    np.savez(images, x_train=np.zeros((2, 3)), y_train=np.zeros(2))
    modality = GraphModality()
    assert modality.claims(f"npz:{path}") and not modality.claims(f"npz:{images}")
    data = modality.load_dataset(f"npz:{path}")
    assert len(data.x_train) == 9 and data.extra["ratio_base"] == 30


def test_npz_without_masks_names_the_missing_arrays(tmp_path) -> None:
    path = tmp_path / "g.npz"
    np.savez(path, x=np.zeros((3, 2)), edge_index=np.zeros((2, 0), dtype=np.int64), y=np.zeros(3, dtype=np.int64))
    with pytest.raises(DataValidationError, match=r"lacks the arrays \['train_mask', 'val_mask', 'test_mask'\]"):
        load_graph(f"npz:{path}")


def test_karate_loads_offline() -> None:
    data = GraphModality().load_dataset("karate")
    validate_real_data(data)
    assert data.num_classes == 4 and len(data.x_train) == 8


def test_gcond_allocation_rule() -> None:
    # classes sorted by size: the smaller ones get int(count * r) (at least 1), the largest the remainder
    assert gcond_class_sizes([50, 30, 20], 10) == [5, 3, 2]
    assert gcond_class_sizes([100, 3, 3], 10) == [8, 1, 1]


def test_cora_ratios_resolve_like_gcond(planetoid_root) -> None:
    data = GraphModality().load_dataset("cora", root=planetoid_root)
    assert data.extra["ratio_base"] == 2708 and len(data.x_train) == 140
    for ratio, total in ((0.013, 35), (0.026, 70)):
        sizes = Budget(ratio=ratio).per_class(data)
        assert sum(sizes) == total and sizes == gcond_class_sizes(data.class_counts(), total)
    # 5.2% of 2,708 rounds to 141 > the 140 labelled nodes; GCond's 140 is asked for as a total
    assert Budget(total=140).per_class(data) == [20] * 7
    assert graph_is_row_normalised(data)


def graph_is_row_normalised(data) -> bool:
    x = data.extra["graph"].x
    return bool(torch.allclose(x.sum(1)[x.sum(1) > 0], torch.ones(1)))


def test_citeseer_ratios_resolve_like_gcond(planetoid_root) -> None:
    data = GraphModality().load_dataset("citeseer", root=planetoid_root)
    for ratio, total in ((0.009, 30), (0.018, 60), (0.036, 120)):
        sizes = Budget(ratio=ratio).per_class(data)
        assert sum(sizes) == total and sizes == gcond_class_sizes(data.class_counts(), total)


def test_missing_planetoid_root_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(DataValidationError, match="Cora/raw"):
        load_graph("cora", root=str(tmp_path))
