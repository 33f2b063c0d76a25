"""Contract tests of the text methods (distill_core.testing.MethodContract) on a tiny two-class JSON-lines set,
plus DD-text specifics: the native protocol reproduces the inner loop, the learned lr stays positive, divergence
is caught."""

from __future__ import annotations

import pytest
import torch

from distill_core import Budget, DivergenceError, distill, evaluate_summary, get_modality
from distill_core.evaluation import train_classifier
from distill_core.objectives.unrolled import init_params, unrolled_sgd
from distill_core.testing import MethodContract
from distill_text.methods.dd_text import inner_lr_limit, soft_cross_entropy
from distill_text.modality import native_protocol, plain_protocol

PLAIN = {"model": "meanpool", "epochs": 30, "lr": 1.0, "n_models": 2}


class TestDDTextContract(MethodContract):
    method = "dd-text"
    ipc = 1
    overrides = {"steps": 12, "learner": "meanpool", "inner_steps": 5, "batch_real": 32, "lr_init": 0.5,
                 "lr_summary": 0.05}
    protocol_overrides = {"n_models": 2}


class TestTextGMContract(MethodContract):
    method = "text-gm"
    ipc = 1
    overrides = {"steps": 10, "model": "meanpool", "batch_real": 32, "lr_summary": 100.0}
    protocol_overrides = PLAIN


class TestTextDMContract(MethodContract):
    method = "text-dm"
    ipc = 1
    overrides = {"steps": 10, "model": "meanpool", "batch_real": 32, "lr_summary": 10.0}
    protocol_overrides = PLAIN


def test_dd_text_summary_carries_soft_labels_lr_and_view(spec: str) -> None:
    outcome = distill("dd-text", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                      overrides={"steps": 3, "learner": "meanpool", "inner_steps": 3, "batch_real": 16})
    summary = outcome.artifact.summary
    assert summary.label_kind == "soft" and summary.lr is not None and float(summary.lr.detach()) > 0
    described = summary.describe()
    assert described["type"] == "text" and described["L"] == 16 and described["native_steps"] == 3
    assert described["model_id"] == outcome.data.extra["model_id"]
    # the mask channel is never learned
    assert set(summary.x[..., -1].unique().tolist()) <= {0.0, 1.0}


def test_native_protocol_reproduces_the_inner_loop(spec: str) -> None:
    """Training with the stored native protocol is the same computation as the unrolled inner loop (lesson 12)."""
    outcome = distill("dd-text", dataset=spec, budget=Budget(ipc=2), evaluate=False, progress=False,
                      overrides={"steps": 2, "learner": "textcnn", "inner_steps": 4, "batch_real": 16, "lr_init": 0.02,
                                 "init_mode": "fixed", "init_seed": 3})
    summary, data = outcome.artifact.summary, outcome.data
    protocol = native_protocol(summary)
    assert protocol.use_learned_lr and protocol.epochs == 4 and protocol.model_kwargs["init_seed"] == 3
    modality = get_modality("text")
    net = modality.build_model("textcnn", sample_shape=data.sample_shape, num_classes=2, **protocol.model_kwargs)
    x, targets = summary.materialize()
    final = unrolled_sgd(net, init_params(net, reinit=False), x, targets, steps=4, lr=float(summary.lr),
                         loss_fn=soft_cross_entropy)
    trained = train_classifier(net, x, targets, label_kind="soft", protocol=protocol, lr=float(summary.lr))
    for name, p in trained.named_parameters():
        # same arithmetic in another order (module vs functional call): float32 round-off only
        torch.testing.assert_close(p.detach(), final[name].detach(), rtol=1e-3, atol=1e-4)


def test_dd_text_huge_inner_lr_is_caught(spec: str) -> None:
    with pytest.raises(DivergenceError, match=r"non-finite|not finite|diverged"):
        distill("dd-text", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                overrides={"steps": 3, "learner": "textcnn", "inner_steps": 5, "batch_real": 16, "lr_init": 1e30})


class _Features(torch.nn.Module):
    """A learner whose features are fixed rows (``embed`` ignores the input) and a zero-initialised last layer."""

    def __init__(self, feats: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.feats = feats
        self.fc = torch.nn.Linear(feats.shape[1], num_classes)
        torch.nn.init.zeros_(self.fc.weight)
        torch.nn.init.zeros_(self.fc.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.feats)


@pytest.mark.parametrize("num_classes", [2, 5])
def test_inner_lr_limit_is_two_over_the_largest_hessian_eigenvalue(num_classes: int) -> None:
    """At uniform predictions, 2 / lambda_max of the last layer's cross-entropy Hessian, computed exactly."""
    feats = torch.rand(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 1.0
    net = _Features(feats, num_classes).double()
    targets = torch.nn.functional.one_hot(torch.arange(6) % num_classes, num_classes).double()
    w0, b0 = net.fc.weight.detach(), net.fc.bias.detach()

    def loss(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(feats @ w.T + b, targets)

    blocks = torch.autograd.functional.hessian(loss, (w0, b0))
    size = w0.numel() + b0.numel()
    hess = torch.cat([torch.cat([blk.reshape(a.numel(), -1) for blk in row], 1)
                      for row, a in zip(blocks, (w0, b0))], 0).reshape(size, size)
    expected = 2.0 / float(torch.linalg.eigvalsh(hess).max())
    assert inner_lr_limit(net, torch.zeros(6, 1, 1), num_classes) == pytest.approx(expected, rel=1e-6)


def test_dd_text_warns_when_the_inner_lr_is_far_above_its_stability_limit(
        spec: str, caplog: pytest.LogCaptureFixture) -> None:
    overrides = {"steps": 1, "learner": "textcnn", "inner_steps": 2, "batch_real": 8}
    with caplog.at_level("WARNING", logger="distill_text.methods.dd_text"):
        distill("dd-text", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                overrides={**overrides, "lr_init": 1e-6})
        assert "stability limit" not in caplog.text
        distill("dd-text", dataset=spec, budget=Budget(ipc=1), evaluate=False, progress=False,
                overrides={**overrides, "lr_init": 0.5})
    assert "stability limit" in caplog.text


def test_evaluation_protocols_and_cross_architecture(spec: str) -> None:
    outcome = distill("random", dataset=spec, budget=Budget(ipc=5), evaluate=False, progress=False)
    modality = get_modality("text")
    for model in ("textcnn", "transformer", "meanpool", "minilm-head"):
        result = evaluate_summary(outcome.artifact.summary, outcome.data, modality=modality,
                                  protocol=plain_protocol(model, epochs=20, n_models=1))
        assert 0.0 <= result.mean <= 100.0
        if model in ("meanpool", "minilm-head"):
            assert result.mean > 60.0, (model, result)  # the toy set is separable by its sentiment words


def test_plain_protocol_defaults_per_learner() -> None:
    """The TextCNN trains 300 epochs (validation-chosen); the other learners 100; meanpool at lr 1."""
    cnn, mean = plain_protocol("textcnn"), plain_protocol("meanpool")
    assert (cnn.epochs, cnn.lr, cnn.momentum, cnn.n_models) == (300, 0.01, 0.9, 5)
    assert (mean.epochs, mean.lr) == (100, 1.0)
    assert plain_protocol("textcnn", epochs=7).epochs == 7
