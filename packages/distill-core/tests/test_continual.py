"""Class-incremental continual learning (distill_core.applications.continual): metrics by hand, task splits, the
protocol end to end on the toy modality, and bad input refused before any compute."""

from __future__ import annotations

import pytest
import torch

from distill_core.applications import continual
from distill_core.applications.continual import (
    ContinualConfig,
    average_accuracy,
    average_forgetting,
    class_order,
    run_continual,
    split_tasks,
)
from distill_core.data import RealData
from distill_core.errors import DataValidationError, DistillError, UnknownNameError
from distill_core.testing import ToyModality, make_blobs


def test_average_accuracy_by_hand():
    # task 0: 9/10 right after task 0; after task 1: 5/10 and 8/10 -> 13/20
    assert average_accuracy([[9], [5, 8]], [10, 10]) == pytest.approx([90.0, 65.0])
    # unequal test sizes weigh by samples, not by task
    assert average_accuracy([[10], [0, 30]], [10, 30]) == pytest.approx([100.0, 75.0])


def test_average_forgetting_by_hand():
    matrix = [[90.0, None, None], [70.0, 80.0, None], [60.0, 50.0, 85.0]]
    assert average_forgetting(matrix) == pytest.approx(((90 - 60) + (80 - 50)) / 2)
    # a task that improved after training on it has negative forgetting (the best is taken before the last task)
    assert average_forgetting([[90.0, None], [95.0, 80.0]]) == pytest.approx(-5.0)
    assert average_forgetting([[90.0, None], [40.0, 80.0]]) == pytest.approx(50.0)
    assert average_forgetting([[70.0]]) == 0.0


def test_class_order_and_split():
    assert class_order(6, seed=0, shuffle=False) == list(range(6))
    order = class_order(10, seed=3)
    assert sorted(order) == list(range(10)) and order == class_order(10, seed=3)
    assert split_tasks(list(range(10)), 5) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert split_tasks(order, 10) == [[c] for c in order]
    with pytest.raises(DataValidationError, match="do not divide 10 classes"):
        split_tasks(list(range(10)), 3)


def _blobs(num_classes: int = 4) -> RealData:
    return make_blobs(num_classes=num_classes, n_per_class=30, dim=6, seed=1)


def test_runs_end_to_end_on_toy():
    config = ContinualConfig(method="random", tasks=2, memory_per_class=3, seeds=[0, 1], epochs=20)
    result = run_continual(config, _blobs(), modality=ToyModality())
    report = result.summary()
    assert len(report["accuracy_per_task_mean"]) == 2 and len(report["matrices"]) == 2
    assert report["matrices"][0][0][1] is None and report["matrices"][0][1][1] is not None
    assert result.memory_sizes == [6, 12]  # 3 per class, 2 classes per task
    assert all(0.0 <= a <= 100.0 for a in report["accuracy_per_task_mean"])
    assert sorted(report["orders"][0]) == [0, 1, 2, 3]


@pytest.mark.parametrize(("changes", "error", "match"), [
    ({"memory_per_class": 0}, DataValidationError, "at least one sample per class"),
    ({"method": "no-such-method"}, UnknownNameError, "memory method 'no-such-method'"),
    ({"method": "none"}, DataValidationError, "keeps no memory"),
    ({"training": "online"}, UnknownNameError, "continual training 'online'"),
    ({"tasks": 3}, DataValidationError, "3 tasks do not divide 4 classes"),
    ({"memory_per_class": 31}, DataValidationError, "larger than class"),
    ({"seeds": []}, DataValidationError, "seeds"),
    ({"select_every": -1}, DataValidationError, "select_every must be an integer >= 0"),
    ({"select_every": 2, "select_ties": "random"}, UnknownNameError, "select_ties rule 'random'"),
    ({"select_every": 2, "validation_per_class": 0}, DataValidationError, "validation_per_class must be at least 1"),
    ({"select_every": 2, "validation_per_class": 16}, DataValidationError, "more than half of class"),
    ({"select_every": 2, "validation_per_class": 10, "memory_per_class": 25}, DataValidationError,
     "plus 10 held out for validation"),
])
def test_bad_input_refused_before_compute(monkeypatch, changes, error, match):
    def no_compute(*args, **kwargs):  # pragma: no cover - reached only when validation failed to refuse
        raise AssertionError("memory built before the input was checked")

    monkeypatch.setattr(continual, "build_task_memory", no_compute)
    config = ContinualConfig(**{"method": "random", "tasks": 2, "memory_per_class": 2, "epochs": 1, **changes})
    with pytest.raises(error, match=match):
        run_continual(config, _blobs(), modality=ToyModality())


def test_empty_class_refused(monkeypatch):
    data = _blobs()
    keep = data.y_test != 2  # class 2 has training samples but no test sample
    data = RealData(data.name, data.x_train, data.y_train, data.x_test[keep], data.y_test[keep], data.num_classes)
    with pytest.raises(DistillError, match=r"classes \['2'\] have no training or no test sample"):
        run_continual(ContinualConfig(method="random", tasks=2, memory_per_class=2), data, modality=ToyModality())
    data = _blobs()
    keep = data.y_train != 1
    data = RealData(data.name, data.x_train[keep], data.y_train[keep], data.x_test, data.y_test, data.num_classes)
    with pytest.raises(DistillError, match="no training sample"):
        run_continual(ContinualConfig(method="random", tasks=2, memory_per_class=2), data, modality=ToyModality())


def test_memory_targets_map_back_to_all_classes():
    data = _blobs()
    x, targets, kind = continual.build_task_memory(ContinualConfig(method="random", memory_per_class=2), data,
                                                   [3, 1], modality=ToyModality(), seed=0,
                                                   device=torch.device("cpu"))
    assert targets.shape == (4, 4) and kind == "hard"
    assert targets[:, [0, 2]].abs().sum() == 0 and torch.equal(targets.sum(1), torch.ones(4))
    labels = targets.argmax(1)
    # every memory sample is a real training sample of the class its target names
    for sample, label in zip(x, labels):
        match = (data.x_train == sample).all(1)
        assert match.any() and int(data.y_train[match][0]) == int(label)


def _scripted_validation(monkeypatch, data, scores):
    """Replace the validation's model training by ``scores[step]`` (steps in call order: 0, 2, 4, ...) and record
    the summary validated at each step."""
    import distill_core.evaluation as evaluation
    from distill_core.protocol import EvalResult

    seen: dict[int, torch.Tensor] = {}

    def scripted(summary, val, *, modality, protocol, seed=0, device="cpu", progress=False):
        step = 2 * len(seen)
        seen[step] = summary.materialize()[0].detach().clone()
        # the validation samples are training samples of the task, held out of what distillation sees
        assert val.num_classes == 2 and len(val.y_test) == 2 * 5
        for sample in val.x_test:
            assert (data.x_train == sample).all(1).any() and not (val.x_train == sample).all(1).any()
            assert not (data.x_test == sample).all(1).any()
        return EvalResult([scores[step]], protocol, "hard", 0.0, seed)

    monkeypatch.setattr(evaluation, "evaluate_summary", scripted)
    return seen


def test_select_every_keeps_the_best_validated_step_on_held_out_training_samples(monkeypatch):
    """select_every validates the task's summary at the start and every N steps on samples held out of the task's
    training data and returns the snapshot of the best step, not the final one."""
    data = _blobs()
    seen = _scripted_validation(monkeypatch, data, {0: 40.0, 2: 50.0, 4: 90.0, 6: 10.0})
    config = ContinualConfig(method="test_toy_dm", memory_per_class=2, steps=6, select_every=2,
                             validation_per_class=5, epochs=1)
    kept: list = []
    x, targets, _ = continual.build_task_memory(config, data, [3, 1], modality=ToyModality(), seed=0,
                                                device=torch.device("cpu"), kept=kept)
    assert sorted(seen) == [0, 2, 4, 6] and kept == [4]
    assert torch.equal(x, seen[4]) and not torch.equal(x, seen[6]) and not torch.equal(x, seen[0])
    assert targets.shape == (4, 4) and targets[:, [0, 2]].abs().sum() == 0


@pytest.mark.parametrize(("scores", "ties", "expected"), [
    ({0: 80.0, 2: 50.0, 4: 70.0, 6: 10.0}, "later", 0),  # no step validates as well as the start: the start
    ({0: 80.0, 2: 50.0, 4: 80.0, 6: 10.0}, "later", 4),  # a tie keeps the further-distilled step (the default)
    ({0: 80.0, 2: 50.0, 4: 80.0, 6: 10.0}, "earlier", 0),  # ... or the earlier one
    ({0: 100.0, 2: 100.0, 4: 100.0, 6: 100.0}, "later", 6),  # a saturated split: the method's final summary
])
def test_select_every_falls_back_to_the_start_and_breaks_ties_as_asked(monkeypatch, scores, ties, expected):
    data = _blobs()
    seen = _scripted_validation(monkeypatch, data, scores)
    config = ContinualConfig(method="test_toy_dm", memory_per_class=2, steps=6, select_every=2,
                             validation_per_class=5, epochs=1, select_ties=ties)
    kept: list = []
    x, _, _ = continual.build_task_memory(config, data, [0, 2], modality=ToyModality(), seed=0,
                                          device=torch.device("cpu"), kept=kept)
    assert kept == [expected] and torch.equal(x, seen[expected])
    assert all(not torch.equal(x, seen[s]) for s in seen if s != expected)


def test_kept_steps_reported_per_seed_and_task():
    config = ContinualConfig(method="random", tasks=2, memory_per_class=2, seeds=[0, 1], epochs=2, select_every=1,
                             validation_per_class=5)
    report = run_continual(config, _blobs(), modality=ToyModality()).summary()
    assert report["kept_steps"] == [[0, 0], [0, 0]]  # a coreset has no step but its start
    assert "kept_steps" not in run_continual(ContinualConfig(method="random", tasks=2, memory_per_class=2,
                                                             epochs=2), _blobs(), modality=ToyModality()).summary()


def test_tasks_with_fewer_classes_than_the_method_learns_from_are_refused(monkeypatch):
    """A gradient-matching memory of a one-class task would learn nothing (a one-output cross-entropy is constant):
    refused before compute, with the fix; two classes per task pass the check."""
    from distill_core.registry import get_method

    monkeypatch.setattr(get_method("test_toy_dm"), "min_classes", 2)
    data = _blobs()
    with pytest.raises(DataValidationError, match=r"needs at least 2 classes per task.*use --tasks 2 or fewer"):
        continual.check_data(ContinualConfig(method="test_toy_dm", tasks=4, memory_per_class=2), data)
    continual.check_data(ContinualConfig(method="test_toy_dm", tasks=2, memory_per_class=2), data)
    continual.check_data(ContinualConfig(method="random", tasks=4, memory_per_class=2), data)  # 1 is enough
