"""Contract tests of every graph method (round trip, determinism, loss decreases, beats random) and the variants'
structure, on a seeded stochastic-block-model graph."""

from __future__ import annotations

import pytest
import torch

from distill_core import Budget, distill
from distill_core.distiller import Distiller
from distill_core.registry import get_method, get_modality
from distill_core.runner import build_method
from distill_core.testing import MethodContract
from distill_graph.methods.gcond import class_gradient_matching_loss, sgc_gradient_matching_loss
from distill_graph.summary import GraphSummary

EVAL = {"epochs": 100, "n_models": 2}
FAST = {"lr_summary": 0.01, "lr_adj": 0.01}


class TestGCond(MethodContract):
    method = "gcond"
    dataset = "sbm"
    overrides = {"steps": 20, "outer": 5, "inner": 5, **FAST}
    protocol_overrides = EVAL
    seeds = (0, 1)


class TestGCondX(MethodContract):
    method = "gcond-x"
    dataset = "sbm"
    overrides = {"steps": 20, "outer": 5, "inner": 5, "lr_summary": 0.01}
    protocol_overrides = EVAL
    seeds = (0, 1)


class TestDosCond(MethodContract):
    method = "doscond"
    dataset = "sbm"
    overrides = {"steps": 40}
    ipc = 4  # the evaluated graph is a Bernoulli draw: with 2 nodes per class a few sampled edges swing accuracy
    protocol_overrides = EVAL
    seeds = (0, 1)


class TestGCDM(MethodContract):
    method = "gcdm"
    dataset = "sbm"
    overrides = {"steps": 20, **FAST}
    protocol_overrides = EVAL
    seeds = (0, 1)


def _setup(name: str, **overrides):
    data = get_modality("graph").load_dataset("sbm")
    method = build_method(name, overrides)
    summary = method.init_summary(data, budget=Budget(ipc=2), modality=get_modality("graph"),
                                  generator=torch.Generator().manual_seed(0))
    return method, summary, data


def test_gcond_x_trains_no_structure() -> None:
    method, summary, _ = _setup("gcond-x")
    assert isinstance(summary, GraphSummary) and summary.structure == "identity"
    assert summary.structure_parameters() == []
    groups = method.param_groups(summary)
    assert [p for g in groups for p in g["params"]] == [summary.x]
    outcome = distill("gcond-x", dataset="sbm", budget=Budget(ipc=2), overrides={"steps": 2, "outer": 2, "inner": 1},
                      evaluate=False, progress=False)
    assert outcome.artifact.summary.num_edges == 0
    assert outcome.artifact.summary.describe()["structure"] == "identity"


def test_gcond_has_a_structure_generator_in_its_optimizer() -> None:
    method, summary, _ = _setup("gcond")
    assert summary.structure == "pge" and summary.structure_parameters()
    params = {id(p) for g in method.param_groups(summary) for p in g["params"]}
    assert all(id(p) in params for p in summary.structure_parameters())


def test_structure_and_feature_epochs_alternate() -> None:
    """GCond: epochs with step % 50 < 10 move only the generator, the others only the features."""
    method, summary, data = _setup("gcond", steps=12, outer=1, inner=0, structure_period=4, structure_epochs=2, **FAST)
    x_before = summary.x.detach().clone()
    gen_before = [p.detach().clone() for p in summary.structure_parameters()]
    distiller = Distiller(method=method, data=data, summary=summary, modality=get_modality("graph"), progress=False)
    method.config.steps = 2  # epochs 0, 1: structure
    distiller.run()
    assert torch.equal(summary.x, x_before)
    assert any(not torch.equal(a, b) for a, b in zip(gen_before, summary.structure_parameters()))
    gen_mid = [p.detach().clone() for p in summary.structure_parameters()]
    method.config.steps = 4  # epochs 2, 3: features
    distiller.run()
    assert not torch.equal(summary.x, x_before)
    assert all(torch.equal(a, b) for a, b in zip(gen_mid, summary.structure_parameters()))


def test_gcond_inner_loop_trains_on_the_dense_generated_adjacency() -> None:
    """GCond's reference trains the backbone between summary updates on the generator's dense output (no threshold);
    ``inner_adjacency="thresholded"`` keeps the evaluated graph instead. The BN statistics of the generator are
    left as they were."""
    from distill_graph.models import build_graph_model

    method, summary, _ = _setup("gcond", threshold=0.5)
    assert method.config.inner_adjacency == "dense"
    bn_before = [bn.running_mean.clone() for bn in summary.generator.bns]
    dense, evaluated = method.inner_adjacency(summary), summary.eval_adjacency()
    assert torch.equal(dense, summary.generated_adjacency())
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(bn_before, summary.generator.bns))
    assert int((dense > 0).sum()) > int((evaluated > 0).sum()) > 0  # the threshold drops edges
    assert torch.equal(torch.where(dense >= 0.5, dense, torch.zeros_like(dense)), evaluated)
    thresholded = build_method("gcond", {"threshold": 0.5, "inner_adjacency": "thresholded"})
    assert torch.equal(thresholded.inner_adjacency(summary), evaluated)
    weights = []
    for m in (method, thresholded):
        torch.manual_seed(0)
        model = build_graph_model("gcn", in_dim=summary.x.shape[1], num_classes=summary.num_classes, dropout=0.0)
        m.train_inner(model, summary, torch.optim.Adam(model.parameters(), lr=0.01), 3)
        weights.append(model.layers[0].weight.detach().clone())
    assert not torch.equal(*weights)


def test_closed_form_sgc_loss_equals_autograd() -> None:
    """The batched closed-form per-class SGC gradients give GCond's autograd loss, for every distance."""
    from distill_core.data import ClassIndex
    from distill_core.method import StepContext

    for metric in ("ours", "mse", "cos"):
        method, summary, data = _setup("gcond", dis_metric=metric)
        method.setup(summary, data, torch.device("cpu"))
        model = method.fresh_backbone(data, torch.device("cpu"))
        values = []
        for fn in (sgc_gradient_matching_loss, class_gradient_matching_loss):
            ctx = StepContext(step=0, seed=0, data=data, class_index=ClassIndex(data.y_train, data.num_classes),
                              modality=get_modality("graph"), device=torch.device("cpu"),
                              generator=torch.Generator().manual_seed(3), optimizer=None, summary=summary,
                              method=method)  # type: ignore[arg-type]
            loss = fn(method, model, summary, ctx, summary.adjacency(), metric)
            grad = torch.autograd.grad(loss, summary.x)[0]
            values.append((loss.detach(), grad))
        assert torch.allclose(values[0][0], values[1][0], rtol=1e-4, atol=1e-6), metric
        assert torch.allclose(values[0][1], values[1][1], rtol=1e-3, atol=1e-7), metric


def test_methods_are_registered() -> None:
    for name in ("gcond", "gcond-x", "doscond", "gcdm"):
        assert get_method(name).modality == "graph"


def test_resolved_budget_is_stored_in_the_artifact(tmp_path) -> None:
    import json

    distill("gcond-x", dataset="sbm", budget=Budget(ratio=0.03), overrides={"steps": 1, "outer": 1, "inner": 0},
            evaluate=False, progress=False, out_dir=tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    resolution = manifest["summary"]["budget_resolution"]
    assert resolution["per_class"] == [3, 3, 3, 3] and resolution["of_nodes"] == 400
    lo, hi = resolution["same_size_ratios"]
    assert lo <= 0.03 < hi and hi - lo == pytest.approx(1 / 400, abs=1e-5)
    assert manifest["extra"]["budget_per_class"] == [3, 3, 3, 3]


def test_inductive_condensation_sees_only_the_training_subgraph() -> None:
    method, summary, data = _setup("gcond", inductive=True)
    method.setup(summary, data, torch.device("cpu"))
    assert method.real is not None and method.real.num_nodes == len(data.x_train)
    assert int(method.real.edge_index.max()) < len(data.x_train)
    outcome = distill("gcond", dataset="sbm", budget=Budget(ipc=2), overrides={"steps": 2, "outer": 2, "inner": 1,
                      "inductive": True}, progress=False, protocol_overrides={"epochs": 10, "n_models": 1})
    assert outcome.evaluation is not None and 0 <= outcome.evaluation.mean <= 100


def test_resume_is_exact(tmp_path) -> None:
    """Interrupted after 2 epochs and resumed from the checkpoint = 4 uninterrupted epochs (generator, batch-norm
    statistics and optimizer state included)."""
    overrides = {"steps": 4, "outer": 2, "inner": 1, "structure_period": 4, "structure_epochs": 2, **FAST}
    straight = distill("gcond", dataset="sbm", budget=Budget(ipc=2), overrides=overrides, evaluate=False,
                       progress=False).artifact.summary
    distill("gcond", dataset="sbm", budget=Budget(ipc=2), overrides={**overrides, "steps": 2}, evaluate=False,
            progress=False, out_dir=tmp_path / "run")
    import json

    from distill_core.checkpoint import CHECKPOINT, load_state, save_state

    state = load_state(tmp_path / "run" / CHECKPOINT)
    state["config"]["steps"] = 4  # the same run, asked to go on
    save_state(tmp_path / "run" / CHECKPOINT, state)
    resumed = distill("gcond", dataset="sbm", budget=Budget(ipc=2), overrides=overrides, evaluate=False,
                      progress=False, out_dir=tmp_path / "run", resume=True)
    assert resumed.run.resumed_from == 2
    assert torch.equal(resumed.artifact.summary.x, straight.x)
    assert torch.equal(resumed.artifact.summary.eval_adjacency(), straight.eval_adjacency())
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["steps"] == 4


def test_doscond_evaluates_a_sampled_structure_and_gcond_x_none() -> None:
    """Lesson 13: the variants differ in structure. DosCond's artifact holds a discrete graph drawn from its learned
    Bernoulli edges (not the empty most-likely graph); GCond-X's holds no edge and it learns no structure."""
    overrides = {"steps": 4, "lr_adj": 1e-3}
    dos = distill("doscond", dataset="sbm", budget=Budget(ipc=4), overrides=overrides, evaluate=False,
                  progress=False).artifact.summary
    described = dos.describe()
    assert described["num_edges"] > 0 and described["discrete"]
    values = dos.sparse_adjacency()[1]
    assert torch.all(values == 1.0)
    _, summary, _ = _setup("doscond")
    assert summary.structure == "pge" and summary.structure_parameters() and summary.sample_seed is not None
    gx = distill("gcond-x", dataset="sbm", budget=Budget(ipc=4), overrides={"steps": 2, "outer": 2, "inner": 1},
                 evaluate=False, progress=False).artifact.summary
    assert gx.num_edges == 0 and gx.describe()["structure"] == "identity"
    _, gx_summary, _ = _setup("gcond-x")
    assert gx_summary.structure_parameters() == [] and gx_summary.sample_seed is None


def test_doscond_sparsity_penalty_acts_only_above_the_target_density() -> None:
    """DosCond's sparsity control: ``beta * max(density - epsilon, 0)`` on the expected edge density, in structure
    epochs only; its gradient lowers the edge logits."""
    from types import SimpleNamespace

    method, summary, _ = _setup("doscond", sparsity_weight=10.0, target_density=0.05)
    ctx = SimpleNamespace(step=0)  # the penalty reads only the step (structure or feature epoch)
    generator = summary.generator
    assert generator is not None
    last = generator.layers[-1]
    with torch.no_grad():
        last.bias.fill_(-6.0)  # density ~0.0025 < 0.05: no penalty
    assert method.structure_penalty(summary, ctx).item() == 0.0
    with torch.no_grad():
        last.bias.fill_(2.0)  # density ~0.88
    penalty = method.structure_penalty(summary, ctx)
    n = len(summary.x)
    prob = torch.sigmoid(generator.logits(summary.x))
    density = (prob.sum() - prob.diagonal().sum()) / (n * (n - 1))
    assert torch.allclose(penalty, 10.0 * (density - 0.05))
    penalty.backward()
    assert float(last.bias.grad) > 0  # gradient descent lowers the logits
    feature_step = SimpleNamespace(step=method.config.structure_epochs)
    assert method.structure_penalty(summary, feature_step) is None  # feature epochs: matching only
    off = build_method("doscond", {"sparsity_weight": 0.0})
    assert off.structure_penalty(summary, ctx) is None
