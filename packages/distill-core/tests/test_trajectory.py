"""Trajectory matching: the step-by-step meta-gradient against plain unrolled autograd, the expert store (resume,
reuse, refusals) and the method through the runner and the CLI on the toy modality."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distill_core.cli import main
from distill_core.data import Budget
from distill_core.errors import DataValidationError
from distill_core.experts import ExpertProtocol, ExpertStore, build_experts, open_store, train_expert
from distill_core.objectives import normalized_distance, plan_steps, trajectory_backward, trajectory_loss
from distill_core.registry import get_modality, register_method
from distill_core.runner import distill
from distill_core.testing import MethodContract, make_blobs
from distill_core.trajectory import TrajectoryConfig, TrajectoryMatching

TOY_MTT = "test_toy_mtt"


@dataclass
class ToyMTTConfig(TrajectoryConfig):
    """Trajectory matching of an MLP on blobs, small enough for seconds."""

    model: str = "mlp"


@register_method(TOY_MTT)
class ToyMTT(TrajectoryMatching):
    modality = "toy"
    config_class = ToyMTTConfig


def _toy_options(tmp: Path, **more: object) -> dict[str, object]:
    return {"experts": str(tmp / "experts"), "n_experts": 2, "expert_batch": 16, "expert_lr": 0.05,
            "max_start_epoch": 2, "expert_epochs": 2, "syn_steps": 5, "lr_summary": 10.0, "lr_init": 0.05,
            "steps": 12, **more}


# -- the objective --------------------------------------------------------------------------------------------------
def _convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(4, 4), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    scale = 1 + 0.1 * torch.rand(len(x), 1, 1, 1, generator=g)
    return x * scale + 0.05 * torch.randn(x.shape, generator=g)


def _gradients(mode: str, steps: int = 6) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
    net = _convnet()
    start = {k: v.detach().clone() for k, v in net.named_parameters()}
    g = torch.Generator().manual_seed(5)
    target = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in start.items()}
    x = torch.randn(9, 1, 8, 8, generator=torch.Generator().manual_seed(1)).requires_grad_()
    logits = torch.randn(9, 3, generator=torch.Generator().manual_seed(2)).requires_grad_()
    raw_lr = torch.tensor(-2.0, requires_grad=True)
    plan = plan_steps(9, steps, 4, torch.Generator().manual_seed(3))
    lr, targets = F.softplus(raw_lr), logits.softmax(-1)
    if mode == "unrolled":
        loss = trajectory_loss(net, start, target, x, targets, lr=lr, plan=plan, augment=_augment)
        loss.backward()
        value = float(loss.detach())
    else:
        value = trajectory_backward(net, start, target, x, targets, lr=lr, plan=plan, augment=_augment, mode=mode)
    assert x.grad is not None and logits.grad is not None and raw_lr.grad is not None
    return value, x.grad, logits.grad, raw_lr.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / a.norm())


def test_exact_recomputation_equals_unrolled_autograd() -> None:
    """TESLA's per-step gradient (exact mode) equals MTT's unrolled gradient for images, soft labels and the lr."""
    unrolled, exact = _gradients("unrolled"), _gradients("exact")
    assert exact[0] == pytest.approx(unrolled[0], rel=1e-6)
    for a, b in zip(unrolled[1:], exact[1:]):
        assert _rel(a, b) < 1e-5
    assert float(unrolled[1].norm()) > 0 and float(unrolled[2].norm()) > 0


def test_paper_mode_is_exact_for_one_step_and_an_approximation_beyond() -> None:
    one_u, one_p = _gradients("unrolled", steps=1), _gradients("paper", steps=1)
    for a, b in zip(one_u[1:], one_p[1:]):
        assert _rel(a, b) < 1e-5
    many_u, many_p = _gradients("unrolled"), _gradients("paper")
    assert many_p[0] == pytest.approx(many_u[0], rel=1e-6)  # same loss value
    assert _rel(many_u[1], many_p[1]) > 1e-3  # TESLA's Eq. 6 drops the cross-step terms


def test_normalized_distance_and_plans() -> None:
    a, b = [torch.zeros(3)], [torch.ones(3)]
    assert float(normalized_distance(a, a, b)) == 1.0
    assert float(normalized_distance(b, a, b)) == 0.0
    with pytest.raises(DataValidationError, match="did not move"):
        normalized_distance(a, a, a)
    plan = plan_steps(10, 5, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in plan.batches] == [4, 4, 2, 4, 4]
    assert sorted(torch.cat(plan.batches[:3]).tolist()) == list(range(10))  # one permutation, then a new one
    assert all(len(b) == 10 for b in plan_steps(10, 3, None, torch.Generator()).batches)
    with pytest.raises(DataValidationError, match="at least 1 inner step"):
        plan_steps(10, 0, None, torch.Generator())


# -- the expert store -----------------------------------------------------------------------------------------------
PROTOCOL = ExpertProtocol(model="mlp", lr=0.05, batch_size=16)


def _store(root: Path, protocol: ExpertProtocol = PROTOCOL, seed: int = 0) -> ExpertStore:
    return open_store(root, data=make_blobs(seed=seed), modality=get_modality("toy"), protocol=protocol)


def test_store_is_incremental_and_resumes_to_the_same_trajectory(tmp_path: Path) -> None:
    data, modality = make_blobs(), get_modality("toy")
    whole, parts = _store(tmp_path / "a"), _store(tmp_path / "b")
    build_experts(whole, n=2, epochs=3, data=data, modality=modality, progress=False)
    build_experts(parts, n=1, epochs=1, data=data, modality=modality, progress=False)
    report = build_experts(parts, n=2, epochs=3, data=data, modality=modality, progress=False)
    assert report["expert_epochs_trained"] == 6 - 1
    assert {k: whole.epochs_of(k) for k in (0, 1)} == {0: 3, 1: 3}
    for k in (0, 1):
        for name, value in whole.load(k, 3).items():
            assert torch.equal(value, parts.load(k, 3)[name])
    assert not torch.equal(whole.load(0, 3)["1.weight"], whole.load(1, 3)["1.weight"])  # experts differ
    assert not torch.equal(whole.load(0, 0)["1.weight"], whole.load(0, 1)["1.weight"])  # and move
    assert report["disk_mb_per_expert"] > 0 and report["bytes_per_epoch"] > 0


def test_a_killed_build_continues_from_the_last_epoch(tmp_path: Path) -> None:
    data, modality = make_blobs(), get_modality("toy")
    store = _store(tmp_path / "s")
    build_experts(store, n=1, epochs=2, data=data, modality=modality, progress=False)
    store.epoch_path(0, 2).unlink()  # as if the process died while writing epoch 2 (writes are atomic)
    ref = _store(tmp_path / "r")
    train_expert(ref, 0, epochs=2, data=data, modality=modality)
    train_expert(store, 0, epochs=2, data=data, modality=modality)
    assert torch.equal(store.load(0, 2)["3.weight"], ref.load(0, 2)["3.weight"])


def test_workers_build_the_same_experts(tmp_path: Path) -> None:
    data, modality = make_blobs(), get_modality("toy")
    one, two = _store(tmp_path / "one"), _store(tmp_path / "two")
    build_experts(one, n=2, epochs=2, data=data, modality=modality, progress=False)
    build_experts(two, n=2, epochs=2, data=data, modality=modality, workers=2, progress=False)
    for k in (0, 1):
        assert torch.allclose(one.load(k, 2)["3.weight"], two.load(k, 2)["3.weight"], atol=1e-5)


def test_store_refuses_another_dataset_protocol_or_architecture(tmp_path: Path) -> None:
    _store(tmp_path / "s")
    with pytest.raises(DataValidationError, match="another dataset"):
        _store(tmp_path / "s", seed=1)
    with pytest.raises(DataValidationError, match=r"another expert protocol \(differs in \['lr'\]"):
        _store(tmp_path / "s", ExpertProtocol(model="mlp", lr=0.1, batch_size=16))
    with pytest.raises(DataValidationError, match="another architecture"):
        ExpertStore.open(tmp_path / "s", data=make_blobs(), protocol=PROTOCOL, param_shapes={"w": [1]})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataValidationError, match="not an expert store"):
        _store(tmp_path / "other")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{")
    with pytest.raises(DataValidationError, match="not a readable expert store manifest"):
        _store(tmp_path / "bad")


def test_missing_and_corrupt_epochs_are_named(tmp_path: Path) -> None:
    data, modality = make_blobs(), get_modality("toy")
    store = _store(tmp_path / "s")
    build_experts(store, n=1, epochs=1, data=data, modality=modality, progress=False)
    with pytest.raises(DataValidationError, match=r"lacks epoch 4 of expert 0 .*epochs 0\.\.1"):
        store.load(0, 4)
    store.epoch_path(0, 1).write_bytes(b"\x00" * 20)
    with pytest.raises(DataValidationError, match="corrupt"):
        store.load(0, 1)
    with pytest.raises(DataValidationError, match="n >= 1"):
        build_experts(store, n=0, epochs=1, data=data, modality=modality, progress=False)
    with pytest.raises(DataValidationError, match="lr must be > 0"):
        ExpertProtocol(lr=0.0)


# -- the method -----------------------------------------------------------------------------------------------------
class TestToyMTT(MethodContract):
    method = TOY_MTT
    dataset = "blobs"
    ipc = 1
    overrides = {"experts": None, "n_experts": 2, "expert_batch": 16, "expert_lr": 0.05, "max_start_epoch": 2,
                 "expert_epochs": 2, "syn_steps": 5, "lr_summary": 10.0, "lr_init": 0.05, "steps": 12}

    @pytest.fixture(autouse=True)
    def _private_cache(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_run_builds_experts_once_and_evaluates_with_the_learned_lr(tmp_path: Path) -> None:
    options = _toy_options(tmp_path, soft_labels=True, lr_labels=1.0, gradient="exact")
    first = distill(TOY_MTT, dataset="blobs", budget=Budget(ipc=2), overrides=options, progress=False,
                    out_dir=tmp_path / "run")
    protocol = first.artifact.evaluations[0]["protocol"]
    assert protocol["use_learned_lr"] is True and protocol["model"] == "mlp"
    assert first.artifact.summary.label_kind == "soft" and first.artifact.summary.lr is not None
    assert first.artifact.extra["experts"]["used"] == [0, 1]
    assert first.artifact.extra["experts"]["epochs_needed"] == 3
    stamp = (tmp_path / "experts" / "expert-0000" / "epoch-003.safetensors").stat().st_mtime_ns
    distill(TOY_MTT, dataset="blobs", budget=Budget(ipc=2), overrides=options, progress=False, evaluate=False)
    assert (tmp_path / "experts" / "expert-0000" / "epoch-003.safetensors").stat().st_mtime_ns == stamp  # reused


def test_gradient_modes_take_the_same_first_step(tmp_path: Path) -> None:
    runs = {mode: distill(TOY_MTT, dataset="blobs", budget=Budget(ipc=2), progress=False, evaluate=False,
                          overrides=_toy_options(tmp_path, steps=1, gradient=mode)).artifact.summary
            for mode in ("unrolled", "exact")}
    assert torch.allclose(runs["unrolled"].x, runs["exact"].x, atol=1e-5)
    assert torch.allclose(runs["unrolled"].raw_lr, runs["exact"].raw_lr, atol=1e-7)  # type: ignore[arg-type]


def test_datm_window_grows_and_threshold_skips(tmp_path: Path) -> None:
    method = ToyMTT(config=ToyMTTConfig(min_start_epoch=0, initial_max_start_epoch=2, max_start_epoch=6,
                                        expansion_steps=4))
    assert [method.window(s) for s in (0, 2, 4, 9)] == [(0, 2), (0, 4), (0, 6), (0, 6)]
    skipped = distill(TOY_MTT, dataset="blobs", budget=Budget(ipc=2), progress=False, evaluate=False,
                      overrides=_toy_options(tmp_path, steps=3, threshold=1e-9))
    start = distill("random", dataset="blobs", budget=Budget(ipc=2), progress=False, evaluate=False)
    assert torch.equal(skipped.artifact.summary.x, start.artifact.summary.x)  # nothing was below the threshold


@pytest.mark.parametrize(("options", "message"), [
    ({"syn_steps": 50, "expert_epochs": 1}, "student would outrun the trajectory"),
    ({"min_start_epoch": 2, "max_start_epoch": 2}, "must be below max_start_epoch"),
    ({"initial_max_start_epoch": 5, "max_start_epoch": 2}, "initial_max_start_epoch"),
    ({"build_experts": False}, "has 0 expert.*distill experts --dataset blobs --n 2 --epochs 3"),
])
def test_bad_options_are_refused_before_compute(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(DataValidationError, match=message):
        distill(TOY_MTT, dataset="blobs", budget=Budget(ipc=2), progress=False, evaluate=False,
                overrides=_toy_options(tmp_path, **options))
    assert not (tmp_path / "experts" / "expert-0000").exists()


def test_cli_experts_builds_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["experts", "--dataset", "blobs", "--n", "2", "--epochs", "2", "--method", TOY_MTT, "--experts",
                 str(tmp_path / "e"), "--set", "expert_batch=16", "--no-progress"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["experts"] == 2 and report["epochs_per_expert"] == {"0": 2, "1": 2}
    assert report["protocol"]["batch_size"] == 16
    assert main(["experts", "--dataset", "blobs", "--n", "1", "--epochs", "1", "--method", "random"]) == 2
    assert "does not learn from expert trajectories" in capsys.readouterr().err
