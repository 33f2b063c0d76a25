"""Test helpers shipped with the library: a tiny seeded modality and the contract every method must pass.

Modality packages get the same contract tests in one line::

    class TestDM(MethodContract):
        method = "dm"
        dataset = "digits"
        overrides = {"steps": 20}
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .artifact import load_artifact
from .callbacks import Callback
from .data import Budget, RealData
from .evaluation import EvalProtocol, evaluate_summary
from .modality import Modality
from .preprocessing import ChannelNormalization, Preprocessing
from .registry import register_modality

__all__ = ["ArtifactContract", "ExitAt", "InterruptAt", "MethodContract", "ToyModality", "distributed_worker",
           "make_blobs", "spawn_ranks"]


def make_blobs(*, n_per_class: int = 40, num_classes: int = 3, dim: int = 8, seed: int = 0,
               spread: float = 1.0) -> RealData:
    """Seeded Gaussian blobs ``(N, dim)`` with one centre per class, a train and a test split."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=g) * 2.0

    def split(n: int) -> tuple[Tensor, Tensor]:
        y = torch.arange(num_classes).repeat_interleave(n)
        return centres[y] + spread * torch.randn(len(y), dim, generator=g), y

    x_train, y_train = split(n_per_class)
    x_test, y_test = split(n_per_class // 2)
    norm = ChannelNormalization.fit(x_train.unsqueeze(-1))
    prep = Preprocessing([norm])
    return RealData("blobs", prep.apply(x_train.unsqueeze(-1)).squeeze(-1), y_train,
                    prep.apply(x_test.unsqueeze(-1)).squeeze(-1), y_test, num_classes, preprocessing=Preprocessing())


@register_modality
class ToyModality(Modality):
    """Vectors and MLPs: enough to exercise the core without any modality package."""

    name = "toy"

    def dataset_names(self) -> list[str]:
        return ["blobs"]

    def load_dataset(self, spec: str, *, root: str | None = None,
                     preprocessing: Preprocessing | None = None) -> RealData:
        if spec != "blobs":
            return super().load_dataset(spec, root=root, preprocessing=preprocessing)
        return make_blobs()

    def model_names(self) -> list[str]:
        return ["mlp", "linear"]

    def build_model(self, name: str, *, sample_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        dim = math.prod(sample_shape)
        if name == "mlp":
            width = int(kwargs.get("width", 32))
            return nn.Sequential(nn.Flatten(), nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, num_classes))
        if name == "linear":
            return nn.Sequential(nn.Flatten(), nn.Linear(dim, num_classes))
        return super().build_model(name, sample_shape=sample_shape, num_classes=num_classes)

    def default_protocol(self, dataset: dict[str, Any], summary: Any) -> EvalProtocol:
        return EvalProtocol(model="mlp", epochs=60, lr=0.05, n_models=3, batch_size=64)


class InterruptAt(Callback):
    """Simulates Ctrl-C (``KeyboardInterrupt``) once ``step`` outer steps are complete, before that step's
    checkpoint: for resume tests."""

    def __init__(self, step: int) -> None:
        self.step = step

    def after_step(self, distiller: Any, step: int, loss: float) -> None:
        if step + 1 == self.step:
            raise KeyboardInterrupt


class ExitAt(Callback):
    """Kills this process (``os._exit``, no clean-up, as a crash or ``kill -9`` would) once ``step`` outer steps are
    complete, on rank ``rank`` only: for the tests of a rank that dies mid-run."""

    def __init__(self, step: int, *, rank: int = 1, code: int = 17) -> None:
        self.step, self.rank, self.code = step, rank, code

    def after_step(self, distiller: Any, step: int, loss: float) -> None:
        from .distributed import world

        if step + 1 == self.step and world()[0] == self.rank:
            os._exit(self.code)


class ArtifactContract:
    """Contract tests every registered method inherits, selections without outer steps (the coreset baselines)
    included: the save/load round trip gives the same summary and the same accuracy, and two runs with one seed
    are identical. Subclasses set ``method``, ``dataset`` and (small) ``overrides``; ``ipc`` / ``budget``,
    ``protocol_overrides`` and ``root`` are optional. Methods that learn inherit :class:`MethodContract`."""

    method: ClassVar[str] = ""
    dataset: ClassVar[str] = ""
    overrides: ClassVar[dict[str, Any]] = {}
    protocol_overrides: ClassVar[dict[str, Any]] = {}
    ipc: ClassVar[int] = 2
    budget: ClassVar[Budget | None] = None  # the summary size of every run (default: ``Budget(ipc=ipc)``)
    root: ClassVar[str | None] = None

    def _run(self, tmp_path: Path | None, seed: int = 0, **kw: Any):  # type: ignore[no-untyped-def]
        from .runner import distill

        return distill(self.method, dataset=self.dataset, budget=self._budget(), seed=seed,
                       overrides=dict(self.overrides), root=self.root, out_dir=tmp_path, progress=False,
                       protocol_overrides=dict(self.protocol_overrides), **kw)

    def _budget(self) -> Budget:
        return self.budget if self.budget is not None else Budget(ipc=self.ipc)

    def test_round_trip(self, tmp_path: Path) -> None:
        outcome = self._run(tmp_path / "art")
        loaded = load_artifact(tmp_path / "art")
        assert torch.equal(loaded.summary.x, outcome.artifact.summary.x)
        assert torch.equal(loaded.summary.targets(), outcome.artifact.summary.targets())
        stored = loaded.evaluations[0]
        again = evaluate_summary(loaded.summary, outcome.data, modality=_modality(loaded.modality),
                                 protocol=EvalProtocol.from_dict(stored["protocol"]), seed=stored["seed"])
        assert round(again.mean, 3) == stored["accuracy_mean"]

    def test_deterministic(self, tmp_path: Path) -> None:
        a = self._run(None, evaluate=False).artifact.summary
        b = self._run(None, evaluate=False).artifact.summary
        assert torch.equal(a.x, b.x)


class MethodContract(ArtifactContract):
    """Contract tests every learning method inherits (pytest collects the ``test_*`` methods of subclasses): those
    of :class:`ArtifactContract`, and the outer loss decreases, and the summary beats a random real subset of the
    same size (by ``beats_random_margin`` points, over ``seeds``)."""

    beats_random_margin: ClassVar[float] = 0.0
    seeds: ClassVar[tuple[int, ...]] = (0,)

    def test_loss_decreases(self) -> None:
        losses = self._run(None, evaluate=False).run.losses
        assert len(losses) >= 2, (f"{self.method} recorded {len(losses)} outer losses; give the contract enough "
                                  "steps and return the loss from run_step")
        k = max(1, len(losses) // 4)
        assert sum(losses[-k:]) / k < sum(losses[:k]) / k, losses

    def test_beats_random(self) -> None:
        from .runner import distill

        ours, rnd = [], []
        for seed in self.seeds:
            outcome = self._run(None, seed=seed)
            base = distill("random", dataset=self.dataset, budget=self._budget(), seed=seed, root=self.root,
                           evaluate=False, progress=False, data=outcome.data)
            protocol = EvalProtocol.from_dict(outcome.artifact.evaluations[0]["protocol"])
            modality = _modality(outcome.artifact.modality)
            ours.append(outcome.evaluation.mean)  # type: ignore[union-attr]
            rnd.append(evaluate_summary(base.artifact.summary, outcome.data, modality=modality, protocol=protocol,
                                        seed=seed).mean)
        assert sum(ours) / len(ours) > sum(rnd) / len(rnd) + self.beats_random_margin, (ours, rnd)


def _modality(name: str) -> Modality:
    from .registry import get_modality

    return get_modality(name)


def distributed_worker(rank: int, world_size: int, init_file: str, call: Callable[[], Any], results: str) -> None:
    """One rank of a gloo process group for multi-process tests (``torch.multiprocessing.spawn`` target): joins
    the group through ``init_file``, runs ``call`` (a picklable callable, e.g. a :func:`functools.partial` of
    :func:`distill_core.runner.distill`) and writes its JSON-able result to ``results/rank<R>.json``."""
    import json

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        Path(results, f"rank{rank}.json").write_text(json.dumps(call()), encoding="utf-8")
    finally:
        torch.distributed.destroy_process_group()


def spawn_ranks(call: Callable[[], Any], folder: str | os.PathLike[str], *, nprocs: int = 2) -> list[Any]:
    """Run ``call`` on ``nprocs`` gloo ranks (:func:`distributed_worker` under ``torch.multiprocessing.spawn``, as
    ``torchrun`` would start them) and return each rank's JSON result, rank 0 first. ``folder`` (new or empty)
    receives the rendezvous file and the ``results/rank<R>.json`` files; a rank that fails raises here
    (``torch.multiprocessing.ProcessRaisedException`` / ``ProcessExitedException``) and returns nothing."""
    import json

    import torch.multiprocessing as mp

    results = Path(folder, "results")
    results.mkdir(parents=True)
    mp.spawn(distributed_worker, args=(nprocs, str(Path(folder, "init")), call, str(results)), nprocs=nprocs)
    return [json.loads((results / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(nprocs)]
