"""GCond's evaluation protocol: collapse warning, whole-graph upper bound, cross-architecture protocols."""

from __future__ import annotations

import logging

import torch

from distill_core.registry import get_modality
from distill_graph import cross_architecture_protocols, whole_graph_accuracy
from distill_graph.summary import GraphSummary


def test_a_collapsed_summary_is_reported(sbm_data, caplog) -> None:
    modality = get_modality("graph")
    summary = GraphSummary(x=sbm_data.x_train[:4], labels=torch.zeros(4, dtype=torch.long),
                           num_classes=sbm_data.num_classes)
    protocol = modality.default_protocol(sbm_data.describe(), summary).with_(epochs=5, n_models=1)
    with caplog.at_level(logging.WARNING, logger="distill_graph.training"):
        acc = modality.fit_and_score(summary, sbm_data, protocol=protocol, lr=None, augment=None,
                                     generator=torch.Generator().manual_seed(0), device=torch.device("cpu"))
    assert acc == 25.0  # one class of four balanced classes
    assert "predicts one class" in caplog.text


def test_whole_graph_beats_a_tiny_random_subgraph(sbm_data) -> None:
    from distill_core import Budget, distill, evaluate_summary

    modality = get_modality("graph")
    protocol = modality.default_protocol(sbm_data.describe(), None).with_(epochs=60, n_models=2)
    whole = whole_graph_accuracy(sbm_data, protocol)
    subset = distill("random", dataset="sbm", budget=Budget(ipc=1), data=sbm_data, evaluate=False, progress=False)
    tiny = evaluate_summary(subset.artifact.summary, sbm_data, modality=modality, protocol=protocol)
    assert min(whole) > tiny.mean + 10, (whole, tiny.accuracies)


def test_cross_architecture_protocols_cover_five_models() -> None:
    base = get_modality("graph").default_protocol({}, None)
    models = [p.model for p in cross_architecture_protocols(base)]
    assert models == ["gcn", "sgc", "sage", "appnp", "mlp"]
    assert base.n_models >= 5 and base.epochs == 600 and base.selection == "best_val"


def test_coreset_features_are_a_trained_gcns_log_probabilities(sbm_data) -> None:
    """Herding / k-center select in the log-probabilities of a GCN trained on the whole graph (GCond's baselines):
    one seeded training per dataset, cached, the same for every call, and the global random state left alone."""
    from distill_graph.training import trained_gcn_embedding

    modality = get_modality("graph")
    state = torch.get_rng_state()
    feats = modality.features(sbm_data, torch.arange(6), seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert feats.shape == (6, sbm_data.num_classes) and torch.isfinite(feats).all()
    assert torch.allclose(feats.exp().sum(1), torch.ones(6), atol=1e-5)  # log-probabilities
    assert torch.equal(modality.features(sbm_data, torch.arange(6), seed=123), feats)
    direct = trained_gcn_embedding(sbm_data, modality.default_protocol({}, None))
    train_nodes = sbm_data.extra["graph"].train_mask.nonzero().flatten()
    assert torch.allclose(direct[train_nodes[:6]], feats)
