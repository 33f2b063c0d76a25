"""The applications of distill-core on images (digits, CPU, seconds): the ConvNet search space of the vision
modality, class-incremental replay and the architecture-search proxy end to end, and `distill apply` on the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from distill_core.applications import ContinualConfig, NASConfig, run_continual, run_nas
from distill_core.cli import main
from distill_core.errors import UnknownNameError
from distill_vision.modality import VisionModality
from distill_vision.models import ConvNet, build_model, convnet_search_space


def test_search_space_has_distinct_buildable_convnets():
    space = convnet_search_space(8)
    assert len(space) == 2 * 4 * 3 * 3 * 3  # 8x8 keeps depths 1 and 2
    assert len({json.dumps(v, sort_keys=True) for v in space}) == len(space)
    assert len(convnet_search_space(28)) == 4 * 4 * 3 * 3 * 3
    x = torch.randn(2, 1, 8, 8)
    for variant in space[::7]:
        model = build_model(variant["model"], sample_shape=(1, 8, 8), num_classes=10, **variant["model_kwargs"])
        assert model(x).shape == (2, 10)


def test_convnet_options():
    plain = ConvNet(in_channels=1, num_classes=3, image_size=8)
    assert any(isinstance(m, torch.nn.ReLU) for m in plain.modules())
    flat = ConvNet(in_channels=1, num_classes=3, image_size=8, depth=2, width=4, pool="none", act="sigmoid")
    assert flat.embed_dim == 4 * 8 * 8 and any(isinstance(m, torch.nn.Sigmoid) for m in flat.modules())
    with pytest.raises(UnknownNameError, match="act 'gelu'"):
        ConvNet(in_channels=1, num_classes=3, image_size=8, act="gelu")
    with pytest.raises(UnknownNameError, match="pool 'stride'"):
        ConvNet(in_channels=1, num_classes=3, image_size=8, pool="stride")


def test_replay_memory_keeps_the_first_task(digits):
    """Balanced replay of 5 random real images per class keeps much of the first task after five tasks; replaying
    nothing forgets it entirely."""
    common = {"tasks": 5, "memory_per_class": 5, "training": "replay", "epochs": 8, "shuffle_classes": False}
    replay = run_continual(ContinualConfig(method="random", **common), digits, modality=VisionModality())
    naive = run_continual(ContinualConfig(method="none", **common), digits, modality=VisionModality())
    first_task_replay, first_task_naive = replay.matrices[0][-1][0], naive.matrices[0][-1][0]
    assert first_task_replay > first_task_naive + 30, (first_task_replay, first_task_naive)
    assert replay.forgetting[0] < naive.forgetting[0]
    assert replay.accuracy_per_task[0][-1] > naive.accuracy_per_task[0][-1] + 20


def test_memory_training_one_class_per_task(digits):
    config = ContinualConfig(method="herding", tasks=10, memory_per_class=2, epochs=100, model_kwargs={"width": 32})
    result = run_continual(config, digits, modality=VisionModality())
    assert len(result.matrices[0]) == 10 and all(len(row) == 10 for row in result.matrices[0])
    assert result.memory_sizes[-1] == 20
    assert result.accuracy_per_task[0][0] == pytest.approx(100.0)  # one class seen: a 1-class memory is never wrong
    assert result.accuracy_per_task[0][-1] > 50.0  # 2 herding images per class, 10 classes: far above chance (10%)


def test_nas_proxy_on_digits(digits):
    config = NASConfig(method="dm", ipc=3, steps=5, variants=6, epochs=10, full_epochs=2, full_per_class=30)
    result = run_nas(config, digits, modality=VisionModality())
    assert len(result.summary_accuracies) == len(result.random_accuracies) == len(result.full_accuracies) == 6
    assert all(v["model"] == "convnet" for v in result.variants)
    assert result.full_size == 300
    assert result.summary()["spearman_summary"]["all"] is None or -1 <= result.summary()["spearman_summary"]["all"] <= 1


def test_cli_apply(capsys):
    assert main(["apply", "nas", "random", "--dataset", "digits", "--ipc", "2", "--variants", "3", "--epochs", "5",
                 "--full-epochs", "1", "--full-per-class", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["application"] == "nas" and report["n_variants"] == 3 and len(report["full_accuracies"]) == 3
    assert main(["apply", "continual", "random", "--dataset", "digits", "--tasks", "2", "--memory", "2",
                 "--epochs", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["application"] == "continual" and len(report["accuracy_per_task_mean"]) == 2
    assert main(["apply", "continual", "dm", "--dataset", "digits", "--memory", "0"]) == 2
    assert "at least one sample per class" in capsys.readouterr().err
    assert main(["apply", "continual", "dm", "--dataset", "digits", "--tasks", "4"]) == 2
    assert "4 tasks do not divide 10 classes" in capsys.readouterr().err
