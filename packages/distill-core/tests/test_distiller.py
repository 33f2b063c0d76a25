"""The shared outer loop: the loss goes down, resume is exact, bad checkpoints are refused, divergence stops cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from distill_core import (
    Budget,
    Callback,
    ClassIndex,
    DataValidationError,
    Distiller,
    DivergenceError,
    EvaluationCallback,
    RealData,
    StepContext,
    Summary,
    distill,
    get_method,
)
from distill_core.checkpoint import load_state
from distill_core.distiller import CHECKPOINT
from distill_core.testing import InterruptAt, MethodContract

TOY_DM, TOY_NAN = "test_toy_dm", "test_toy_nan"  # registered in conftest.py


def toy_summary(data: RealData, *, ipc: int = 2, seed: int = 0) -> Summary:
    """``ipc`` seeded real samples per class."""
    chosen = ClassIndex(data.y_train, data.num_classes).sample_balanced(
        ipc, generator=torch.Generator().manual_seed(seed))
    return Summary(x=data.x_train[chosen], labels=data.y_train[chosen], num_classes=data.num_classes)


def _method(name: str = TOY_DM, **overrides: Any):  # type: ignore[no-untyped-def]
    cls = get_method(name)
    return cls(config=cls.config_class(**{**cls.config_class().to_dict(), **overrides}))


def _distiller(data: RealData, *, seed: int = 0, name: str = TOY_DM, out: Path | None = None,
               callbacks: tuple[Callback, ...] = (), every: int = 2, **overrides: Any) -> Distiller:
    return Distiller(method=_method(name, **overrides), data=data, summary=toy_summary(data, ipc=2, seed=seed),
                     modality=_toy(), seed=seed, out_dir=out, checkpoint_every=every, callbacks=callbacks,
                     progress=False)


def _toy():  # type: ignore[no-untyped-def]
    from distill_core import get_modality

    return get_modality("toy")


def _checkpoint(out: Path) -> dict[str, Any]:
    return load_state(out / CHECKPOINT)


class TestLoop:
    def test_loss_decreases_from_noise(self, blobs: RealData) -> None:
        d = _distiller(blobs, steps=20, init="noise")
        torch.manual_seed(0)
        d.summary.x.data.normal_()
        result = d.run()
        assert result.steps == 20 and len(result.losses) == 20
        first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
        assert last < 0.5 * first, result.losses

    def test_summary_moves_and_labels_stay(self, blobs: RealData) -> None:
        d = _distiller(blobs, steps=5)
        x0, y0 = d.summary.x.detach().clone(), d.summary.labels.clone()
        d.run()
        assert not torch.equal(d.summary.x.detach(), x0)
        assert torch.equal(d.summary.labels, y0)

    def test_same_seed_same_summary_other_seed_differs(self, blobs: RealData) -> None:
        a = _distiller(blobs, steps=6).run().summary.x.detach()
        b = _distiller(blobs, steps=6).run().summary.x.detach()
        assert torch.equal(a, b)
        # same initial summary, other run seed: other real batches and embeddings
        other = Distiller(method=_method(steps=6), data=blobs, summary=toy_summary(blobs, ipc=2, seed=0),
                          modality=_toy(), seed=1, progress=False).run().summary.x.detach()
        assert not torch.equal(a, other)

    def test_evaluation_callback(self, blobs: RealData) -> None:
        seen: list[int] = []

        def evaluate(summary: Summary) -> float:
            seen.append(summary.budget)
            return 50.0

        cb = EvaluationCallback(every=2, evaluate=evaluate)
        _distiller(blobs, steps=5, callbacks=(cb,)).run()
        assert cb.history == [(2, 50.0), (4, 50.0)] and seen == [6, 6]

    def test_checkpoints_every_k_and_at_the_end(self, blobs: RealData, tmp_path: Path) -> None:
        steps_seen: list[int] = []

        class Spy(Callback):
            def after_step(self, distiller: Distiller, step: int, loss: float) -> None:
                path = distiller.checkpoint_path
                steps_seen.append(_checkpoint(tmp_path)["step"] if path is not None and path.exists() else -1)

        _distiller(blobs, steps=5, out=tmp_path, every=2, callbacks=(Spy(),)).run()
        # the spy runs before the checkpoint callback of the same step
        assert steps_seen == [-1, -1, 2, 2, 4]
        assert _checkpoint(tmp_path)["step"] == 5
        assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temporary files left


class TestResume:
    def test_interrupted_run_resumes_bit_for_bit(self, blobs: RealData, tmp_path: Path) -> None:
        full = _distiller(blobs, steps=10, out=tmp_path / "full", every=2)
        reference = full.run()

        first = _distiller(blobs, steps=10, out=tmp_path / "cut", every=2, callbacks=(InterruptAt(5),))
        with pytest.raises(KeyboardInterrupt):
            first.run()
        assert _checkpoint(tmp_path / "cut")["step"] == 4  # step 5's checkpoint never happened

        second = _distiller(blobs, steps=10, out=tmp_path / "cut", every=2)
        resumed = second.run(resume=True)
        assert resumed.resumed_from == 4 and resumed.steps == 10
        assert torch.equal(resumed.summary.x, reference.summary.x)
        assert resumed.losses == reference.losses
        assert second.method.calls == full.method.calls == 10  # method state was restored too
        state, ref_state = _checkpoint(tmp_path / "cut"), _checkpoint(tmp_path / "full")
        assert torch.equal(state["optimizer"]["state"][0]["momentum_buffer"],
                           ref_state["optimizer"]["state"][0]["momentum_buffer"])

    def test_shorter_run_extended_bit_for_bit(self, blobs: RealData, tmp_path: Path) -> None:
        reference = _distiller(blobs, steps=8).run()
        _distiller(blobs, steps=3, out=tmp_path, every=2).run()
        assert _checkpoint(tmp_path)["step"] == 3
        resumed = _distiller(blobs, steps=8, out=tmp_path, every=2).run(resume=True)
        assert resumed.resumed_from == 3
        assert torch.equal(resumed.summary.x, reference.summary.x)
        assert resumed.losses == reference.losses

    def test_adam_state_resumes_exactly(self, blobs: RealData, tmp_path: Path) -> None:
        kw = {"optimizer": "adam", "lr_summary": 0.05}
        reference = _distiller(blobs, steps=6, **kw).run()
        with pytest.raises(KeyboardInterrupt):
            _distiller(blobs, steps=6, out=tmp_path, every=1, callbacks=(InterruptAt(4),), **kw).run()
        resumed = _distiller(blobs, steps=6, out=tmp_path, **kw).run(resume=True)
        assert resumed.resumed_from == 3
        assert torch.equal(resumed.summary.x, reference.summary.x)

    def test_resume_without_checkpoint_starts_at_zero(self, blobs: RealData, tmp_path: Path) -> None:
        result = _distiller(blobs, steps=3, out=tmp_path).run(resume=True)
        assert result.resumed_from is None and result.steps == 3

    def test_refuses_other_method(self, blobs: RealData, tmp_path: Path) -> None:
        _distiller(blobs, steps=2, out=tmp_path).run()
        with pytest.raises(DataValidationError, match=f"belongs to method '{TOY_DM}'.*not '{TOY_NAN}'.*--out"):
            _distiller(blobs, steps=2, out=tmp_path, name=TOY_NAN).run(resume=True)

    def test_refuses_other_seed(self, blobs: RealData, tmp_path: Path) -> None:
        _distiller(blobs, steps=2, out=tmp_path).run()
        with pytest.raises(DataValidationError, match=r"with seed 0, not .* with seed 3"):
            _distiller(blobs, steps=2, out=tmp_path, seed=3).run(resume=True)

    def test_refuses_other_config(self, blobs: RealData, tmp_path: Path) -> None:
        _distiller(blobs, steps=2, out=tmp_path).run()
        with pytest.raises(DataValidationError, match=r"another config.*lr_summary.*--out directory"):
            _distiller(blobs, steps=2, out=tmp_path, lr_summary=0.3).run(resume=True)

    def test_refuses_checkpoint_beyond_requested_steps(self, blobs: RealData, tmp_path: Path) -> None:
        _distiller(blobs, steps=4, out=tmp_path).run()
        with pytest.raises(DataValidationError, match=r"step 4.*only 2 steps"):
            _distiller(blobs, steps=2, out=tmp_path).run(resume=True)

    def test_unreadable_checkpoint(self, blobs: RealData, tmp_path: Path) -> None:
        (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
        with pytest.raises(DataValidationError, match=r"cannot be read.*delete .*checkpoint"):
            _distiller(blobs, steps=2, out=tmp_path).run(resume=True)


class _LRBomb(Callback):
    """Sets an absurd summary learning rate after ``step`` good steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, distiller: Distiller, step: int, loss: float) -> None:
        if step + 1 == self.step:
            for group in distiller.optimizer.param_groups:
                group["lr"] = 1e12


class TestDivergence:
    def test_absurd_lr_stops_with_clear_message(self, blobs: RealData, tmp_path: Path) -> None:
        d = _distiller(blobs, steps=5, out=tmp_path, lr_summary=1e12)
        x0 = d.summary.x.detach().clone()
        with pytest.raises(DivergenceError) as info:
            d.run()
        message = str(info.value)
        for fragment in (f"{TOY_DM} diverged at outer step 1", "largest magnitude", "rolled back to step 0",
                         "lr_summary=1e+12", "--config", str(tmp_path / CHECKPOINT)):
            assert fragment in message, message
        assert torch.isfinite(d.summary.x).all() and torch.equal(d.summary.x.detach(), x0)
        state = _checkpoint(tmp_path)
        assert state["step"] == 0 and torch.equal(state["summary"]["x"], x0)

    def test_checkpoint_holds_last_good_state(self, blobs: RealData, tmp_path: Path) -> None:
        good = _distiller(blobs, steps=3).run().summary.x.detach().clone()
        d = _distiller(blobs, steps=8, out=tmp_path, every=100, callbacks=(_LRBomb(3),))
        with pytest.raises(DivergenceError, match=r"diverged at outer step 4.*rolled back to step 3"):
            d.run()
        assert d.step == 3 and len(d.losses) == 3
        assert torch.isfinite(d.summary.x).all() and torch.equal(d.summary.x.detach(), good)
        state = _checkpoint(tmp_path)
        assert state["step"] == 3 and torch.equal(state["summary"]["x"], good)
        assert all(torch.isfinite(s["momentum_buffer"]).all() for s in state["optimizer"]["state"].values())

    def test_runner_saves_no_artifact_after_divergence(self, tmp_path: Path) -> None:
        with pytest.raises(DivergenceError, match="Lower the summary learning rate"):
            distill(TOY_DM, dataset="blobs", budget=Budget(ipc=2), overrides={"steps": 4, "lr_summary": 1e12},
                    out_dir=tmp_path, progress=False)
        assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]

    def test_nan_loss_stops(self, blobs: RealData, tmp_path: Path) -> None:
        d = _distiller(blobs, name=TOY_NAN, steps=8, nan_at=3, out=tmp_path)
        with pytest.raises(DivergenceError, match="outer step 4: the outer loss is nan"):
            d.run()
        assert d.step == 3 and torch.isfinite(d.summary.x).all()
        assert _checkpoint(tmp_path)["step"] == 3

    def test_rollback_restores_mutable_method_state(self, blobs: RealData, tmp_path: Path) -> None:
        class Counting(get_method(TOY_NAN)):  # type: ignore[misc, valid-type]
            """Keeps a tensor it updates in place, as a model pool would."""

            def __init__(self, **kw: Any) -> None:
                super().__init__(**kw)
                self.seen = torch.zeros(())

            def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
                self.seen += 1  # in place, before the loss turns out to be NaN
                return super().outer_loss(summary, ctx)

            def state_dict(self) -> dict[str, Any]:
                return {"seen": self.seen}

            def load_state_dict(self, state: dict[str, Any]) -> None:
                self.seen.copy_(state["seen"])

        method = Counting(config=_method(TOY_NAN, steps=8, nan_at=3).config)
        d = Distiller(method=method, data=blobs, summary=toy_summary(blobs), modality=_toy(), out_dir=tmp_path,
                      progress=False)
        with pytest.raises(DivergenceError):
            d.run()
        assert method.seen.item() == 3  # the state after the last good step, not the failed one
        assert _checkpoint(tmp_path)["method_state"]["seen"].item() == 3

    def test_nan_gradient_stops(self, blobs: RealData) -> None:
        class NaNGrad(get_method(TOY_DM)):  # type: ignore[misc, valid-type]
            def outer_loss(self, summary: Summary, ctx: StepContext) -> Tensor:
                # finite loss, but d sqrt(u)/du at u = 0 is inf, times 0 is NaN
                return super().outer_loss(summary, ctx) + torch.sqrt((summary.x * 0).sum())

        d = Distiller(method=NaNGrad(config=_method(steps=3).config), data=blobs,
                      summary=toy_summary(blobs), modality=_toy(), progress=False)
        x0 = d.summary.x.detach().clone()
        with pytest.raises(DivergenceError, match="gradient of summary parameter 'x' is not finite"):
            d.run()
        assert torch.equal(d.summary.x.detach(), x0)


class TestToyDMContract(MethodContract):
    """The contract mixin itself, exercised on the toy DM."""

    method = TOY_DM
    dataset = "blobs"
    overrides = {"steps": 12}
    protocol_overrides = {"epochs": 30, "n_models": 2}
