"""One-shot federated learning (distill_core.applications.federated): the Dirichlet split, the one-shot union and
FedAvg on the toy modality, bad input refused."""

from __future__ import annotations

import pytest
import torch

from distill_core.applications.federated import (
    FederatedConfig,
    check_config,
    dirichlet_split,
    run_federated,
    training_subset,
)
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.testing import ToyModality, make_blobs


def _labels(per_class: int = 100, classes: int = 10) -> torch.Tensor:
    return torch.arange(classes).repeat_interleave(per_class)[torch.randperm(per_class * classes,
                                                                             generator=torch.Generator().manual_seed(0))]


def _max_share(labels: torch.Tensor, parts: list[torch.Tensor]) -> float:
    """Mean over clients of the share of the client's largest class."""
    shares = [float(torch.bincount(labels[p], minlength=10).max()) / len(p) for p in parts]
    return sum(shares) / len(shares)


def test_every_sample_lands_once_and_the_split_is_seeded():
    labels = _labels()
    parts = dirichlet_split(labels, clients=10, alpha=0.5, seed=4)
    assert len(parts) == 10 and all(len(p) >= 1 for p in parts)
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(len(labels)))
    again = dirichlet_split(labels, clients=10, alpha=0.5, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))
    other = dirichlet_split(labels, clients=10, alpha=0.5, seed=5)
    assert any(not torch.equal(a, b) for a, b in zip(parts, other))


def test_small_alpha_skews_the_class_proportions():
    labels = _labels()
    skewed = _max_share(labels, dirichlet_split(labels, clients=10, alpha=0.1, seed=0))
    even = _max_share(labels, dirichlet_split(labels, clients=10, alpha=100.0, seed=0))
    assert skewed > 0.5, skewed  # a client is dominated by one class
    assert even < 0.25, even  # near the IID 0.1 (+ sampling noise)
    sizes = [len(p) for p in dirichlet_split(labels, clients=10, alpha=0.1, seed=0)]
    assert max(sizes) > 2 * min(sizes)  # client sizes vary too


def test_bad_splits_are_refused():
    labels = _labels(per_class=5, classes=2)
    with pytest.raises(DataValidationError, match="at least 2 clients"):
        dirichlet_split(labels, clients=1, alpha=0.5, seed=0)
    with pytest.raises(DataValidationError, match="alpha must be"):
        dirichlet_split(labels, clients=3, alpha=0.0, seed=0)
    with pytest.raises(DataValidationError, match="cannot give 20 clients"):
        dirichlet_split(labels, clients=20, alpha=0.5, seed=0)
    # one class, almost no spread: one client takes everything in every draw
    with pytest.raises(DataValidationError, match="a client with no data"):
        dirichlet_split(torch.zeros(5, dtype=torch.long), clients=5, alpha=1e-3, seed=0)


def test_config_is_checked():
    with pytest.raises(UnknownNameError, match="client method 'nope'"):
        check_config(FederatedConfig(method="nope"))
    with pytest.raises(DataValidationError, match="clients must be"):
        check_config(FederatedConfig(method="random", clients=1))
    with pytest.raises(DataValidationError, match="alpha must be"):
        check_config(FederatedConfig(method="random", alpha=-1.0))


def test_one_shot_union_has_the_right_size_and_fedavg_runs():
    data = make_blobs(num_classes=4, n_per_class=40, dim=6, seed=2)
    config = FederatedConfig(method="herding", clients=5, alpha=0.5, ipc=3, rounds=3, local_epochs=1, epochs=30,
                             seeds=[0, 1])
    result = run_federated(config, data, modality=ToyModality())
    report = result.summary()
    for seed, row in zip(config.seeds, result.per_seed):
        parts = dirichlet_split(data.y_train, clients=5, alpha=0.5, seed=seed)
        expected = sum(min(3, int(n)) for p in parts for n in torch.bincount(data.y_train[p], minlength=4) if n > 0)
        assert row["summary_size"] == expected
        assert row["client_sizes"] == [len(p) for p in parts]
        assert row["summary_upload_bytes"] == row["random_upload_bytes"] == expected * (6 + 1) * 4
        assert len(row["fedavg_accuracy"]) == 3
        assert row["fedavg_bytes_per_round"] == 2 * 5 * row["fedavg_parameters"] * 4
    assert report["summary_accuracy"]["mean"] > 50.0  # 4 well-separated blobs: far above chance (25%)
    assert report["fedavg_final_accuracy"]["mean"] > 25.0


def test_train_per_class_splits_a_balanced_subset_and_keeps_the_test_set():
    data = make_blobs(num_classes=4, n_per_class=40, dim=6, seed=2)
    small = training_subset(data, 10, seed=3)
    assert torch.bincount(small.y_train, minlength=4).tolist() == [10] * 4
    assert torch.equal(small.x_test, data.x_test)
    rows = {tuple(r.tolist()) for r in data.x_train}
    assert all(tuple(r.tolist()) in rows for r in small.x_train)  # real training samples, not new ones
    assert not torch.equal(training_subset(data, 10, seed=4).x_train, small.x_train)  # seeded per run
    config = FederatedConfig(method="random", clients=3, ipc=2, epochs=5, seeds=[0], train_per_class=10,
                             compare_fedavg=False)
    assert sum(run_federated(config, data, modality=ToyModality()).per_seed[0]["client_sizes"]) == 40
    with pytest.raises(DataValidationError, match="lower --train-per-class"):
        training_subset(data, 41, seed=0)
    with pytest.raises(DataValidationError, match="train_per_class must be"):
        check_config(FederatedConfig(method="random", train_per_class=0))


def test_model_options_and_test_subset_reach_the_server_and_fedavg():
    data = make_blobs(num_classes=4, n_per_class=40, dim=6, seed=2)
    config = FederatedConfig(method="random", clients=3, ipc=2, rounds=1, epochs=5, seeds=[0], model="mlp",
                             model_kwargs={"width": 3}, test_per_class=2)
    result = run_federated(config, data, modality=ToyModality())
    assert result.per_seed[0]["fedavg_parameters"] == (6 * 3 + 3) + (3 * 4 + 4)  # an MLP of width 3, not 32
    assert result.protocol.model_kwargs == {"width": 3}
    # 8 test samples: every accuracy is a multiple of 1/8
    for acc in (result.per_seed[0]["summary_accuracy"], *result.per_seed[0]["fedavg_accuracy"]):
        assert round(acc * 8 / 100, 6) == round(acc * 8 / 100)
    with pytest.raises(UnknownNameError):
        run_federated(FederatedConfig(method="random", model="no-such-net", seeds=[0]), data, modality=ToyModality())
    with pytest.raises(DataValidationError, match="model_kwargs must be a dict"):
        check_config(FederatedConfig(method="random", model_kwargs=[3]))  # type: ignore[arg-type]
    with pytest.raises(DataValidationError, match="test_per_class must be"):
        check_config(FederatedConfig(method="random", test_per_class=0))
