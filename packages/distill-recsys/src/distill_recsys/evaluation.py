"""Evaluation of a recommender summary: fit each learner on it, rank all items for every real user, report
HR@k / nDCG@k / PSP@k on the held-out test interactions (mean +- std over seeds), with the validation-chosen
hyper-parameters recorded (lesson 11)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import scipy.sparse as sp
import torch
from torch import Tensor

from distill_core.errors import DataValidationError
from distill_core.protocol import EvalProtocol, EvalResult

from .data import InteractionData
from .learners import LEARNERS, get_learner

__all__ = ["RecsysEvalProtocol", "RecsysEvalResult", "RecsysProtocol", "evaluate_support"]

DETERMINISTIC = {"infinite-ae", "ease"}


@dataclass
class RecsysProtocol:
    """How a recommender summary is evaluated (stored with every result).

    Args:
        learners: learners fit on the summary (``infinite-ae``, ``ease``, ``als``, ``bpr``).
        seeds: seeds of the randomised learners (ALS, BPR); the closed-form ones are fit once.
        primary: the learner whose test nDCG@10 is the headline number.
        batch_users: real users scored at once.
    """

    learners: tuple[str, ...] = ("infinite-ae", "ease", "als", "bpr")
    seeds: int = 3
    primary: str = "infinite-ae"
    batch_users: int = 1024

    def to_eval_protocol(self) -> RecsysEvalProtocol:
        """The core's protocol record (model = primary learner; the rest in ``model_kwargs``)."""
        return RecsysEvalProtocol(model=self.primary, epochs=0, n_models=self.seeds, lr=0.0,
                                  batch_size=self.batch_users,
                                  model_kwargs={"recsys": asdict(self), "metric": "test nDCG@10 (x100)",
                                                "selection": "validation HR@100"})

    @classmethod
    def from_eval_protocol(cls, protocol: EvalProtocol) -> RecsysProtocol:
        """The recommender protocol a core protocol record describes. A record whose ``model`` or ``n_models``
        was changed after it was written (``distill eval --model ease`` / ``--models 2`` on a stored record)
        evaluates that one learner / that many seeds."""
        stored = protocol.model_kwargs.get("recsys") if protocol.model_kwargs else None
        if not stored:
            return cls(learners=(protocol.model,), primary=protocol.model, seeds=max(1, protocol.n_models))
        values = dict(stored)
        values["learners"] = tuple(values.get("learners", cls.learners))
        out = cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})
        if protocol.model != out.primary:
            out.learners, out.primary = (protocol.model,), protocol.model
        if protocol.n_models != out.seeds:
            out.seeds = max(1, protocol.n_models)
        return out


@dataclass
class RecsysEvalProtocol(EvalProtocol):
    """The core's protocol record of a :class:`RecsysProtocol`. Changing it (the runner's ``protocol_overrides``,
    the CLI's ``--models`` / ``--eval-model``) changes the recommender protocol: ``n_models`` is the number of seeds
    of ALS and BPR, ``model`` evaluates with that learner only, ``epochs`` does not apply (recommender learners are
    fit in closed form or by their own solvers); other fields are refused."""

    def with_(self, **changes: Any) -> RecsysEvalProtocol:
        protocol = RecsysProtocol.from_eval_protocol(self)
        unknown = sorted(set(changes) - {"n_models", "model", "epochs"})
        if unknown:
            raise DataValidationError(f"recsys evaluation has no options {unknown}")
        if "n_models" in changes:
            protocol.seeds = int(changes["n_models"])
        if "model" in changes:
            protocol.learners, protocol.primary = (changes["model"],), changes["model"]
        return protocol.to_eval_protocol()


@dataclass
class RecsysEvalResult(EvalResult):
    """An :class:`~distill_core.evaluation.EvalResult` whose ``accuracies`` are the primary learner's test nDCG@10
    per seed (``metric`` ``"nDCG@10"``), plus every learner's metrics in ``metrics``."""

    metric: str = "nDCG@10"
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["metrics"] = self.metrics
        return out

    def __str__(self) -> str:
        parts = []
        for name, m in self.metrics.items():
            mean, std = m["mean"], m["std"]
            parts.append(f"{name}: nDCG@10 {mean['nDCG@10']:.2f} +- {std['nDCG@10']:.2f}, HR@10 {mean['HR@10']:.2f}, "
                         f"PSP@10 {mean['PSP@10']:.2f}")
        return "; ".join(parts) if parts else f"nDCG@10 {self.mean:.2f} +- {self.std:.2f}"


def _mean_std(runs: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    keys = runs[0].keys()
    mean = {k: round(statistics.fmean(r[k] for r in runs), 4) for k in keys}
    std = {k: round(statistics.pstdev([r[k] for r in runs]) if len(runs) > 1 else 0.0, 4) for k in keys}
    return mean, std


def evaluate_support(support: Tensor | sp.spmatrix, data: InteractionData, *,
                     protocol: RecsysProtocol | None = None, seed: int = 0,
                     device: torch.device | str = "cpu", learner_kwargs: dict[str, dict[str, Any]] | None = None
                     ) -> RecsysEvalResult:
    """Fit every learner of ``protocol`` on ``support`` (``(n_support, n_items)``) and test on ``data``.

    Returns:
        A :class:`RecsysEvalResult`; ``metrics[learner]`` holds ``mean``/``std`` over seeds of the test metrics,
        the per-seed runs and the validation-chosen hyper-parameters.
    """
    protocol = protocol or RecsysProtocol()
    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    primary: list[float] = []
    for name in protocol.learners:
        if name not in LEARNERS:
            get_learner(name)  # raises with the list of choices
        seeds = [seed] if name in DETERMINISTIC else [seed * 1000 + i for i in range(protocol.seeds)]
        runs = []
        learner = get_learner(name, **(learner_kwargs or {}).get(name, {}))
        for s in seeds:
            learner = get_learner(name, **(learner_kwargs or {}).get(name, {}))
            runs.append(learner.evaluate(support, data, seed=s, batch_size=protocol.batch_users, device=device))
        mean, std = _mean_std([r.test for r in runs])
        config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(learner).items()}
        metrics[name] = {"mean": mean, "std": std, "seeds": seeds, "config": config, "chosen": [r.chosen for r in runs],
                         "val_HR@100": [r.val["HR@100"] for r in runs], "fit_s": [round(r.fit_s, 2) for r in runs]}
        if name == protocol.primary:
            primary = [r.test["nDCG@10"] for r in runs]
    if not primary:
        primary = [metrics[protocol.learners[0]]["mean"]["nDCG@10"]]
    return RecsysEvalResult(accuracies=primary, protocol=protocol.to_eval_protocol(), label_kind="implicit",
                            wall_s=time.perf_counter() - start, seed=seed, metrics=metrics)
