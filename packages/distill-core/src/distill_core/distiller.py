"""The outer loop shared by every method.

It owns the optimizer over the summary, per-step seeding, callbacks (progress bar, checkpoints, periodic
evaluation, logging) and the divergence guard: after every step the loss, the gradients and the summary must be
finite and the summary within ``divergence_factor`` of its initial scale; otherwise the summary is rolled back to
the last good step, that state is checkpointed, and :class:`~distill_core.errors.DivergenceError` says what to
change.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .callbacks import Callback
from .checkpoint import CHECKPOINT, LEGACY_CHECKPOINT, load_state, save_state, state_from_bytes, state_to_bytes
from .data import ClassIndex, RealData, data_fingerprint
from .distributed import broadcast_bytes, is_writer, world
from .errors import DataValidationError, DistillError, DivergenceError
from .method import Method, StepContext
from .modality import Modality
from .runtime import retain_freed_memory
from .synset import Summary

__all__ = ["CHECKPOINT", "Callback", "CheckpointCallback", "Distiller", "EvaluationCallback", "RunResult", "TimeBudget",
           "json_equal", "step_seed"]

logger = logging.getLogger(__name__)


def json_equal(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparing a stored config with a live one."""
    if isinstance(value, (list, tuple)):
        return [json_equal(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_equal(v) for k, v in value.items()}
    return value


def step_seed(seed: int, step: int) -> int:
    """The seed of outer step ``step`` of a run seeded with ``seed``."""
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


class TimeBudget(Callback):
    """End the run once ``seconds`` of wall time have passed (the steps done are recorded in the artifact)."""

    def __init__(self, *, seconds: float) -> None:
        self.seconds = seconds
        self._start = 0.0

    def before_run(self, distiller: Distiller) -> None:
        self._start = time.perf_counter()

    def after_step(self, distiller: Distiller, step: int, loss: float) -> None:
        if time.perf_counter() - self._start >= self.seconds:
            logger.info("time budget of %.0f s reached after %d steps", self.seconds, step + 1)
            distiller.should_stop = True


class CheckpointCallback(Callback):
    """Write ``checkpoint.safetensors`` (atomically) every ``every`` steps and after the last one."""

    def __init__(self, *, every: int) -> None:
        self.every = every

    def after_step(self, distiller: Distiller, step: int, loss: float) -> None:
        if self.every > 0 and (step + 1) % self.every == 0:
            distiller.save_checkpoint()

    def after_run(self, distiller: Distiller) -> None:
        distiller.save_checkpoint()


class EvaluationCallback(Callback):
    """Evaluate the summary every ``every`` steps with ``evaluate(summary) -> accuracy``; the history is kept."""

    def __init__(self, *, every: int, evaluate: Callable[[Summary], float]) -> None:
        self.every = every
        self.evaluate = evaluate
        self.history: list[tuple[int, float]] = []

    def after_step(self, distiller: Distiller, step: int, loss: float) -> None:
        if self.every > 0 and (step + 1) % self.every == 0:
            acc = self.evaluate(distiller.summary)
            self.history.append((step + 1, acc))
            logger.info("step %d: accuracy %.2f%%", step + 1, acc)


@dataclass
class RunResult:
    summary: Summary
    steps: int
    losses: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    resumed_from: int | None = None

    @property
    def steps_per_s(self) -> float:
        done = self.steps - (self.resumed_from or 0)
        return done / self.wall_s if self.wall_s > 0 else 0.0


class Distiller:
    """Runs a method's outer loop on a summary.

    Args:
        method: the method (its config holds ``steps`` and the summary optimizer settings).
        data: the real data (validated).
        summary: the initial summary.
        modality: the modality that builds models and augmentations.
        seed: the run seed; step ``t`` is seeded with ``step_seed(seed, t)``.
        out_dir: where checkpoints go (none when ``None``).
        checkpoint_every: checkpoint period in steps (0: only at the end).
        callbacks: extra callbacks.
        progress: show a tqdm bar.
        device: where to compute.
    """

    def __init__(
        self,
        *,
        method: Method[Any],
        data: RealData,
        summary: Summary,
        modality: Modality,
        seed: int = 0,
        out_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int = 100,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        self.method = method
        self.device = torch.device(device)
        self.data = data
        self.summary = summary.to(self.device)
        self.modality = modality
        self.seed = seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks: list[Callback] = list(callbacks)
        if self.out_dir is not None:
            self.callbacks.append(CheckpointCallback(every=checkpoint_every))
        self.progress = progress
        self.class_index = ClassIndex(data.y_train, data.num_classes)
        self.optimizer = method.make_optimizer(self.summary)
        self.step = 0
        self.losses: list[float] = []
        self.should_stop = False  # a callback may set it to end the run early (e.g. a time budget)
        self._scale = float(self.summary.x.detach().abs().max().clamp_min(1.0))
        self._fingerprint: dict[str, Any] | None = None

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The dataset's name, shapes and a content hash of its training split (computed once)."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(self.data)
        return self._fingerprint

    # -- checkpoints --------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "seed": self.seed,
            "method": self.method.name,
            "config": self.method.config.to_dict(),
            "summary": copy.deepcopy(self.summary.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "method_state": copy.deepcopy(self.method.state_dict()),  # a method may update its state in place
            "losses": list(self.losses),
            "dataset": self.fingerprint if self.out_dir is not None else None,
            "callbacks": {self._callback_key(i, cb): st for i, cb in enumerate(self.callbacks)
                          if (st := cb.state_dict())},
        }

    @staticmethod
    def _callback_key(index: int, callback: Callback) -> str:
        return f"{index}:{type(callback).__name__}"

    def _load_state(self, state: dict[str, Any]) -> None:
        self.summary.load_state_dict(state["summary"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.method.load_state_dict(state["method_state"])
        self.step = int(state["step"])
        self.losses = list(state["losses"])
        saved = state.get("callbacks") or {}
        for i, cb in enumerate(self.callbacks):
            if self._callback_key(i, cb) in saved:
                cb.load_state_dict(copy.deepcopy(saved[self._callback_key(i, cb)]))

    def save_checkpoint(self, state: dict[str, Any] | None = None) -> None:
        path = self.checkpoint_path
        if path is None:
            return
        save_state(path, state if state is not None else self._state())

    def resume(self) -> bool:
        """Restore the last checkpoint in ``out_dir``; False when there is none.

        The checkpoint must come from the same method, seed, config (except ``steps``), summary size and dataset
        (name, shapes and content hash of the training split); anything else is refused with the fix.
        """
        path = self.checkpoint_path
        if path is None:
            return False
        if not path.is_file():
            legacy = path.with_name(LEGACY_CHECKPOINT)
            if legacy.is_file():
                raise DataValidationError(
                    f"{legacy} is a pickle checkpoint written by an older distill; it is not loaded, since unpickling "
                    "can run code. Delete it and start over (without --resume), or choose another --out")
            return False
        state = load_state(path, device=self.device)
        if state.get("method") != self.method.name or state.get("seed") != self.seed:
            raise DataValidationError(
                f"{path} belongs to method {state.get('method')!r} with seed {state.get('seed')}, not "
                f"{self.method.name!r} with seed {self.seed}; use another --out directory or the same settings")
        # ``steps`` only says where to stop, so a finished or interrupted run may be extended with more steps
        saved = {k: v for k, v in (state.get("config") or {}).items() if k != "steps"}
        current = {k: v for k, v in self.method.config.to_dict().items() if k != "steps"}
        if json_equal(saved) != json_equal(current):
            changed = sorted(k for k in saved.keys() | current.keys()
                             if json_equal(saved.get(k)) != json_equal(current.get(k)))
            raise DataValidationError(f"{path} was written with another config (differs in {changed}); resume with "
                                      "the same --config or use another --out directory")
        stored = state.get("dataset") or {}
        if stored != self.fingerprint:
            changed = sorted(k for k in stored.keys() | self.fingerprint.keys()
                             if stored.get(k) != self.fingerprint.get(k))
            raise DataValidationError(
                f"{path} was distilled from another dataset ({stored.get('name')!r}, {stored.get('n_train')} training "
                f"samples; differs in {changed}) than this run's {self.fingerprint['name']!r}; resume with the same "
                "--dataset and data files, or use another --out directory")
        want = {k: list(v.shape) for k, v in self.summary.state_dict().items()}
        have = {k: list(v.shape) for k, v in (state.get("summary") or {}).items() if isinstance(v, torch.Tensor)}
        if want != have:
            raise DataValidationError(
                f"{path} holds a summary of another size ({have}) than this run asks for ({want}); resume with the "
                "same --ipc / --budget / --ratio, or use another --out directory")
        if int(state.get("step", 0)) > self.method.config.steps:
            raise DataValidationError(f"{path} is at step {state.get('step')} but only {self.method.config.steps} "
                                      "steps were asked for; ask for at least as many steps or use another --out "
                                      "directory")
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DataValidationError(f"{path} does not fit this run ({type(exc).__name__}: {exc}); delete it to "
                                      "start over, or use another --out directory") from exc
        logger.info("resumed from %s at step %d", path, self.step)
        return True

    def _resume_everywhere(self) -> bool:
        """:meth:`resume` on rank 0, the one process that reads and writes the folder; under torch.distributed it
        then sends its restored state (in the checkpoint format) and every other rank continues from it, so all
        ranks start at the same step with the same summary, optimizer and method state."""
        if world()[1] == 1:
            return self.resume()
        if is_writer():
            try:
                message = b"S" + state_to_bytes(self._state()) if self.resume() else b"N"
            except DistillError as exc:
                broadcast_bytes(b"E" + str(exc).encode("utf-8"))  # the other ranks stop with the same message
                raise
            broadcast_bytes(message)
            return message != b"N"
        message = broadcast_bytes(None)
        if message[:1] == b"E":
            raise DataValidationError(message[1:].decode("utf-8"))
        if message[:1] == b"N":
            return False
        self._load_state(state_from_bytes(message[1:]))
        return True

    # -- the loop -----------------------------------------------------------------------------------------------
    def _context(self, step: int) -> StepContext:
        seed = step_seed(self.seed, step)
        torch.manual_seed(seed)
        return StepContext(step=step, seed=seed, data=self.data, class_index=self.class_index,
                           modality=self.modality, device=self.device,
                           generator=torch.Generator().manual_seed(seed), optimizer=self.optimizer,
                           summary=self.summary, method=self.method)

    def _check_summary(self) -> None:
        self.summary.assert_finite()
        limit = self.method.config.divergence_factor * self._scale
        peak = float(self.summary.x.detach().abs().max())
        if peak > limit:
            raise FloatingPointError(f"the summary's largest magnitude {peak:.3g} exceeds {limit:.3g} "
                                     f"({self.method.config.divergence_factor:g} x its initial scale)")

    def run(self, *, resume: bool = False) -> RunResult:
        """Run until ``method.config.steps`` outer steps are done (continuing a checkpoint when ``resume``)."""
        total = self.method.config.steps
        if self.device.type == "cpu":
            retain_freed_memory()
        self.method.setup(self.summary, self.data, self.device)  # before resume: a checkpoint overrides its state
        resumed_from = self.step if resume and self._resume_everywhere() else None
        for cb in self.callbacks:
            cb.before_run(self)
        start = time.perf_counter()
        bar = tqdm(total=total, initial=self.step, desc=f"distill {self.method.name}", disable=not self.progress,
                   dynamic_ncols=True)
        try:
            while self.step < total and not self.should_stop:
                good = self._state()
                ctx = self._context(self.step)
                try:
                    loss = self.method.run_step(self.summary, ctx)
                    self._check_summary()
                except FloatingPointError as exc:
                    self._load_state(good)
                    self.save_checkpoint(good)
                    where = f"; the last good state (step {self.step}) is in {self.checkpoint_path}" \
                        if self.checkpoint_path else ""
                    raise DivergenceError(
                        f"{self.method.name} diverged at outer step {self.step + 1}: {exc}. The summary was rolled "
                        f"back to step {self.step}{where}. Lower the summary learning rate (lr_summary="
                        f"{self.method.config.lr_summary:g}) with --config, or check the data for extreme values"
                    ) from exc
                self.losses.append(loss)
                self.step += 1
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)  # before update, which draws the bar
                bar.update(1)
                for cb in self.callbacks:
                    cb.after_step(self, self.step - 1, loss)
        finally:
            bar.close()
        wall = time.perf_counter() - start
        for cb in self.callbacks:
            cb.after_run(self)
        return RunResult(self.summary, self.step, self.losses, wall, resumed_from)
