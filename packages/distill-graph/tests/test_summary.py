"""The condensed graph: GCond's structure generator, the stored sparse adjacency and variants' structure."""

from __future__ import annotations

import torch
from torch import nn

from distill_core.artifact import Artifact, load_artifact
from distill_graph.summary import GraphSummary, StructureGenerator


def test_generator_equals_mlp_on_concatenated_pairs() -> None:
    torch.manual_seed(0)
    gen = StructureGenerator(in_dim=5, hidden=8, nlayers=3)
    x = torch.randn(6, 5)
    # reference: the MLP applied to [x_i; x_j] for every ordered pair, as in GCond's PGE
    pairs = torch.cat([x.repeat_interleave(6, 0), x.repeat(6, 1)], 1)
    mlp = nn.Sequential(gen.layers[0], gen.bns[0], nn.ReLU(), gen.layers[1], gen.bns[1], nn.ReLU(), gen.layers[2])
    z = mlp(pairs).reshape(6, 6)
    ref = torch.sigmoid((z + z.t()) / 2)
    ref = ref - torch.diag(torch.diag(ref))
    adj = gen(x)
    assert torch.allclose(adj, ref, atol=1e-5)
    assert torch.equal(adj, adj.t())
    assert torch.all(torch.diag(adj) == 0) and torch.all((adj >= 0) & (adj < 1))


def test_artifact_round_trip_keeps_the_evaluated_adjacency(tmp_path) -> None:
    torch.manual_seed(0)
    summary = GraphSummary(x=torch.randn(7, 4), labels=torch.tensor([0, 0, 1, 1, 2, 2, 2]), num_classes=3,
                           structure="pge", generator_hidden=8)
    summary.generator(summary.x)  # one training-mode pass moves the batch-norm statistics
    raw = summary.eval_adjacency()
    summary.threshold = float(raw[raw > 0].median())
    expected = summary.eval_adjacency()
    assert 0 < int((expected > 0).sum()) < 42  # the threshold dropped some entries, not all
    Artifact(summary=summary, method="gcond", modality="graph", config={}, dataset={"name": "x"}, seed=0,
             steps=0).save(tmp_path / "a")
    loaded = load_artifact(tmp_path / "a").summary
    assert isinstance(loaded, GraphSummary) and loaded.structure == "fixed"
    assert torch.equal(loaded.eval_adjacency(), expected)
    data = loaded.to_pyg()
    assert data.edge_index.shape[1] == int((expected > 0).sum()) and torch.equal(data.y, summary.labels)


def test_identity_structure_has_no_parameters_and_no_edges() -> None:
    summary = GraphSummary(x=torch.randn(4, 3), labels=torch.tensor([0, 0, 1, 1]), num_classes=2)
    assert summary.structure_parameters() == [] and summary.generator is None
    assert [n for n, _ in summary.named_parameters()] == ["x"]
    assert summary.num_edges == 0 and torch.equal(summary.eval_adjacency(), torch.zeros(4, 4))


def test_discrete_structure_is_zero_one() -> None:
    torch.manual_seed(0)
    summary = GraphSummary(x=torch.randn(6, 3), labels=torch.tensor([0, 0, 0, 1, 1, 1]), num_classes=2,
                           structure="pge", threshold=0.5, discrete=True, generator_hidden=8)
    adj = summary.eval_adjacency()
    assert set(adj.unique().tolist()) <= {0.0, 1.0} and torch.all(torch.diag(adj) == 0)


def test_sampled_structure_is_a_fixed_bernoulli_draw() -> None:
    """DosCond's evaluated graph: one seeded 0/1 draw of the edge probabilities, the same on every call, symmetric,
    and about as dense as the probabilities say."""
    from distill_graph.summary import bernoulli_graph

    torch.manual_seed(0)
    summary = GraphSummary(x=torch.randn(40, 3), labels=torch.arange(40) % 2, num_classes=2, structure="pge",
                           discrete=True, sample_seed=7, generator_hidden=8)
    adj = summary.eval_adjacency()
    assert torch.equal(adj, summary.eval_adjacency()) and torch.equal(adj, adj.t())
    assert set(adj.unique().tolist()) == {0.0, 1.0} and torch.all(torch.diag(adj) == 0)
    summary.discrete = False
    prob = summary.eval_adjacency()
    expected = prob.triu(1).sum()
    assert abs(float(adj.triu(1).sum()) - float(expected)) < 4 * float(expected) ** 0.5
    draws = torch.stack([bernoulli_graph(torch.full((30, 30), 0.2), torch.Generator().manual_seed(s))
                         for s in range(20)])
    assert abs(float(draws.triu(1).mean()) * 2 * 30 / 29 - 0.2) < 0.02
    assert summary.describe()["num_edges"] > 0
