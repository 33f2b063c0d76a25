"""The evaluation protocol: stored with results, deterministic, refusing mismatched preprocessing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from distill_core import (
    ClassIndex,
    DataValidationError,
    EvalProtocol,
    EvalResult,
    Preprocessing,
    RealData,
    Summary,
    ZCAWhitening,
    evaluate_cross_architecture,
    evaluate_summary,
)
from distill_core.errors import UnknownNameError
from distill_core.evaluation import accuracy, init_model_, train_classifier
from distill_core.testing import ToyModality

PROTOCOL = EvalProtocol(model="mlp", epochs=40, lr=0.05, n_models=2, batch_size=64)


def _summary(data: RealData, *, ipc: int = 3, **kwargs: Any) -> Summary:
    chosen = ClassIndex(data.y_train, data.num_classes).sample_balanced(
        ipc, generator=torch.Generator().manual_seed(0))
    return Summary(x=data.x_train[chosen], labels=data.y_train[chosen], num_classes=data.num_classes,
                   preprocessing=data.preprocessing, **kwargs)


class TestProtocol:
    def test_dict_round_trip(self) -> None:
        protocol = EvalProtocol(model="linear", model_kwargs={"width": 8}, epochs=7, augment="flip",
                                use_learned_lr=True, n_models=5)
        stored = json.loads(json.dumps(protocol.to_dict()))
        assert EvalProtocol.from_dict(stored) == protocol
        assert stored["selection"] == "final" and stored["schedule"] == "step_half"

    def test_from_dict_ignores_unknown_keys(self) -> None:
        # manifests written by a newer distill may carry fields this version does not know
        assert EvalProtocol.from_dict({"model": "mlp", "future_field": 1}) == EvalProtocol(model="mlp")

    def test_with_changes_a_copy(self) -> None:
        changed = PROTOCOL.with_(epochs=3)
        assert changed.epochs == 3 and PROTOCOL.epochs == 40

    def test_defaults_follow_the_papers(self) -> None:
        p = EvalProtocol()
        assert (p.momentum, p.weight_decay, p.batch_size, p.n_models) == (0.9, 5e-4, 256, 3)


class TestEvaluateSummary:
    def test_trains_and_is_deterministic(self, blobs: RealData, toy_modality: ToyModality) -> None:
        summary = _summary(blobs)
        a = evaluate_summary(summary, blobs, modality=toy_modality, protocol=PROTOCOL, seed=3)
        b = evaluate_summary(summary, blobs, modality=toy_modality, protocol=PROTOCOL, seed=3)
        assert a.accuracies == b.accuracies and len(a.accuracies) == 2
        assert a.mean > 80.0, a  # 3 well separated blobs, chance is 33 %
        assert a.protocol is PROTOCOL and a.label_kind == "hard" and a.seed == 3
        stored = a.to_dict()
        assert stored["protocol"] == PROTOCOL.to_dict() and stored["labels"] == "hard"
        assert stored["accuracy_mean"] == round(a.mean, 3)

    def test_refuses_other_preprocessing(self, blobs: RealData, toy_modality: ToyModality) -> None:
        zca = Preprocessing([ZCAWhitening.fit(blobs.x_train, reg=0.1)])
        whitened = _summary(blobs)
        whitened.preprocessing = zca
        with pytest.raises(DataValidationError) as info:
            evaluate_summary(whitened, blobs, modality=toy_modality, protocol=PROTOCOL)
        message = str(info.value)
        assert "['zca']" in message and "['none']" in message and "distill eval DIR" in message
        # the other way round too: plain summary, whitened test data
        data_zca = RealData(blobs.name, zca.apply(blobs.x_train), blobs.y_train, zca.apply(blobs.x_test),
                            blobs.y_test, blobs.num_classes, preprocessing=zca)
        with pytest.raises(DataValidationError, match=r"distilled in preprocessing \['none'\]"):
            evaluate_summary(_summary(blobs), data_zca, modality=toy_modality, protocol=PROTOCOL)
        # and matching preprocessing is accepted
        result = evaluate_summary(_summary(data_zca), data_zca, modality=toy_modality, protocol=PROTOCOL)
        assert result.mean > 80.0

    def test_refuses_other_sample_shape(self, blobs: RealData, toy_modality: ToyModality) -> None:
        bad = Summary(x=torch.zeros(3, 5), labels=torch.arange(3), num_classes=3)
        with pytest.raises(DataValidationError, match=r"shape \(5,\) but the test data \(8,\)"):
            evaluate_summary(bad, blobs, modality=toy_modality, protocol=PROTOCOL)

    def test_refuses_zero_models(self, blobs: RealData, toy_modality: ToyModality) -> None:
        # used to end in statistics.StatisticsError ('fmean requires at least one data point')
        with pytest.raises(DataValidationError, match=r"trains 0 models; ask for at least 1 \(--models\)"):
            evaluate_summary(_summary(blobs), blobs, modality=toy_modality, protocol=PROTOCOL.with_(n_models=0))

    def test_xavier_init_protocol(self, blobs: RealData, toy_modality: ToyModality) -> None:
        net = init_model_(nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 3)), "xavier")
        assert float(net[0].bias.abs().max()) == 0.0 and float(net[2].bias.abs().max()) == 0.0
        assert abs(float(net[0].weight.std()) - (2 / 500) ** 0.5) < 0.004  # Xavier-normal std sqrt(2/(in+out))
        result = evaluate_summary(_summary(blobs), blobs, modality=toy_modality, protocol=PROTOCOL.with_(init="xavier"))
        assert result.mean > 80.0 and result.protocol.init == "xavier"
        with pytest.raises(UnknownNameError, match="init"):
            evaluate_summary(_summary(blobs), blobs, modality=toy_modality, protocol=PROTOCOL.with_(init="orthogonal"))

    @pytest.mark.parametrize("label_kind", ["soft", "regression"])
    def test_soft_and_regression_labels_train(self, blobs: RealData, toy_modality: ToyModality,
                                              label_kind: str) -> None:
        summary = _summary(blobs, label_kind=label_kind)
        result = evaluate_summary(summary, blobs, modality=toy_modality, protocol=PROTOCOL)
        assert result.label_kind == label_kind and result.mean > 80.0, result

    def test_uses_learned_lr_only_when_asked(self, blobs: RealData) -> None:
        seen: list[float | None] = []

        class Spy(ToyModality):
            def fit_and_score(self, summary, data, *, lr, **kwargs):  # type: ignore[no-untyped-def, override]
                seen.append(lr)
                return 50.0

        summary = _summary(blobs, learn_lr=True, lr_init=0.125)
        evaluate_summary(summary, blobs, modality=Spy(), protocol=PROTOCOL.with_(use_learned_lr=True))
        evaluate_summary(summary, blobs, modality=Spy(), protocol=PROTOCOL)
        assert seen[:2] == pytest.approx([0.125, 0.125]) and seen[2:] == [None, None]

    def test_cross_architecture(self, blobs: RealData, toy_modality: ToyModality) -> None:
        protocols = [PROTOCOL, PROTOCOL.with_(model="linear")]
        results = evaluate_cross_architecture(_summary(blobs), blobs, modality=toy_modality, protocols=protocols)
        assert [r.protocol.model for r in results] == ["mlp", "linear"]
        assert all(r.mean > 80.0 for r in results)


class TestHelpers:
    def test_result_statistics(self) -> None:
        result = EvalResult([50.0, 60.0, 70.0], PROTOCOL, "hard", 1.0, 0)
        assert result.mean == pytest.approx(60.0)
        assert result.std == pytest.approx((200 / 3) ** 0.5)  # population std
        assert EvalResult([42.0], PROTOCOL, "hard", 1.0, 0).std == 0.0
        assert "60.00 +- 8.16 % (3 x mlp)" == str(result)

    def test_accuracy_by_hand(self) -> None:
        model = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            model.weight.copy_(torch.eye(2))  # predicts the larger coordinate
        x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
        assert accuracy(model, x, torch.tensor([0, 1, 1, 1]), batch_size=3) == pytest.approx(75.0)

    def test_train_classifier_fits_separable_points(self) -> None:
        torch.manual_seed(0)
        x = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0]])
        targets = torch.eye(3)
        model = nn.Linear(2, 3)
        protocol = EvalProtocol(epochs=200, lr=0.5, weight_decay=0.0, batch_size=2)
        train_classifier(model, x, targets, label_kind="hard", protocol=protocol,
                         generator=torch.Generator().manual_seed(0))
        assert accuracy(model, x, torch.arange(3)) == 100.0
