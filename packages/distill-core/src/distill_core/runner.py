"""One call from a method name to a saved, evaluated artifact; the CLI and the benchmarks use it."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .artifact import Artifact
from .data import Budget, RealData, validate_real_data
from .distiller import Callback, Distiller, RunResult, TimeBudget
from .errors import DataValidationError
from .evaluation import EvalProtocol, EvalResult, evaluate_summary
from .method import Method, config_from_dict
from .modality import Modality
from .registry import get_method, get_modality, modality_for_dataset

__all__ = ["RunOutcome", "build_method", "distill", "evaluate_artifact", "load_config_file", "resolve_modality"]

logger = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    artifact: Artifact
    run: RunResult
    evaluation: EvalResult | None
    out_dir: Path | None
    data: RealData
    picture: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON config file of method options."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"config file {path} does not exist")
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataValidationError(f"config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise DataValidationError(f"config file {path} must hold a JSON object of option: value pairs")
    return values


def build_method(name: str, overrides: dict[str, Any] | None = None) -> Method[Any]:
    cls = get_method(name)
    config = config_from_dict(cls.config_class, {**cls.config_class().to_dict(), **(overrides or {})})
    return cls(config=config)


def resolve_modality(method: Method[Any], dataset: str) -> Modality:
    if method.modality is None:
        return modality_for_dataset(dataset)
    modality = get_modality(method.modality)
    if not modality.claims(dataset):
        raise DataValidationError(
            f"method {method.name!r} is a {modality.name} method and cannot read dataset {dataset!r}; choose one of "
            f"{modality.dataset_names()} or a prefixed path it accepts")
    return modality


def distill(
    method_name: str,
    *,
    dataset: str,
    budget: Budget,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    root: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    evaluate: bool = True,
    protocol_overrides: dict[str, Any] | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
    device: str | torch.device = "cpu",
    data: RealData | None = None,
    max_seconds: float | None = None,
    callbacks: Sequence[Callback] = (),
) -> RunOutcome:
    """Distill ``dataset`` with ``method_name`` into a summary of ``budget``, evaluate it and save the artifact.

    Input is validated before any compute: the method name, the dataset, the config keys and the budget.
    ``max_seconds`` ends the outer loop early once that much wall time has passed (the steps done are recorded).
    """
    method = build_method(method_name, overrides)
    modality = resolve_modality(method, dataset)
    custom = modality.run(method, dataset=dataset, budget=budget, seed=seed, root=root, out_dir=out_dir, resume=resume,
                          evaluate=evaluate, protocol_overrides=protocol_overrides,
                          checkpoint_every=checkpoint_every, progress=progress, device=device, data=data)
    if custom is not None:
        return custom
    t0 = time.perf_counter()
    if data is None:
        data = modality.load_dataset(dataset, root=root)
    validate_real_data(data)
    sizes = budget.per_class(data)
    logger.info("budget %s resolves to %d samples (%s per class)", budget.describe(), sum(sizes), sizes)
    t_load = time.perf_counter() - t0
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    summary = method.init_summary(data, budget=budget, modality=modality, generator=generator)
    extra_callbacks = [*callbacks, *([TimeBudget(seconds=max_seconds)] if max_seconds else [])]
    distiller = Distiller(method=method, data=data, summary=summary, modality=modality, seed=seed, out_dir=out_dir,
                          checkpoint_every=checkpoint_every, progress=progress, device=device,
                          callbacks=extra_callbacks)
    result = distiller.run(resume=resume)
    artifact = Artifact(
        summary=result.summary.cpu(),
        method=method.name,
        modality=modality.name,
        config=method.config.to_dict(),
        dataset=data.describe(),
        seed=seed,
        steps=result.steps,
        extra={
            "budget_request": budget.describe(),
            "budget_per_class": sizes,
            "distill_wall_s": round(result.wall_s, 3),
            "steps_per_s": round(result.steps_per_s, 4),
            "final_loss": result.losses[-1] if result.losses else None,
            "resumed_from": result.resumed_from,
            "selection": "final",
            "max_seconds": max_seconds,
        },
    )
    evaluation = None
    if evaluate:
        protocol = modality.default_protocol(data.describe(), artifact.summary)
        if protocol_overrides:
            protocol = protocol.with_(**protocol_overrides)
        evaluation = evaluate_summary(artifact.summary, data, modality=modality, protocol=protocol, seed=seed,
                                      device=device, progress=progress)
        artifact.evaluations.append(evaluation.to_dict())
    picture = None
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        artifact.save(out)
        try:
            picture = modality.render(artifact, out / f"summary{modality.render_suffix()}")
        except NotImplementedError:
            picture = None
    return RunOutcome(artifact, result, evaluation, out, data, picture,
                      {"load_s": t_load, "distill_s": result.wall_s})


def evaluate_artifact(
    artifact: Artifact,
    *,
    root: str | None = None,
    protocol: EvalProtocol | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[EvalResult, RealData]:
    """Evaluate a loaded artifact on its dataset, with its stored preprocessing and (by default) its stored
    protocol, so a fresh process reproduces the stored accuracy."""
    modality = get_modality(artifact.modality)
    data = modality.load_dataset(artifact.dataset["name"], root=root, preprocessing=artifact.preprocessing)
    if protocol is None:
        protocol = (EvalProtocol.from_dict(artifact.evaluations[0]["protocol"]) if artifact.evaluations
                    else modality.default_protocol(data.describe(), artifact.summary))
        seed = int(artifact.evaluations[0].get("seed", seed)) if artifact.evaluations else seed
    result = evaluate_summary(artifact.summary, data, modality=modality, protocol=protocol, seed=seed,
                              device=device, progress=progress)
    return result, data
