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

from .artifact import MANIFEST, Artifact
from .checkpoint import CHECKPOINT, LEGACY_CHECKPOINT
from .data import Budget, RealData
from .distiller import Callback, Distiller, RunResult, TimeBudget
from .distributed import broadcast_tensors, is_writer
from .download import download_progress
from .errors import DataValidationError, UnknownNameError
from .evaluation import EvalProtocol, EvalResult, evaluate_summary
from .files import LOCK_NAME, OutputLock
from .method import Method, config_from_dict
from .modality import Modality
from .parameterized import ParameterizedSummary
from .registry import get_method, get_modality, modality_for_dataset
from .selection import ModelSelection
from .synset import Summary

__all__ = ["RunOutcome", "build_method", "check_device", "check_out_dir", "distill", "evaluate_artifact",
           "load_config_file", "resolve_modality"]

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
    random_evaluation: EvalResult | None = None  # with ``compare_random``


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


def _adapted(method: Method[Any], modality: Modality) -> Method[Any]:
    """``method``, or the modality's own version of it (:meth:`Modality.method_name`; built with its defaults)."""
    name = modality.method_name(method.name, method.modality)
    return method if name == method.name else build_method(name)


def resolve_modality(method: Method[Any], dataset: str, modality: str | None = None) -> Modality:
    """The modality that reads ``dataset`` for ``method``: the method's own, else ``modality`` when given (the
    any-modality baselines), else the one installed modality that claims the dataset."""
    if method.modality is not None and modality is not None and modality != method.modality:
        raise DataValidationError(f"method {method.name!r} is a {method.modality} method; drop --modality "
                                  f"{modality} or pick a {modality} method")
    name = method.modality or modality
    if name is None:
        return modality_for_dataset(dataset)
    chosen = get_modality(name)
    if not chosen.claims(dataset):
        raise DataValidationError(
            f"method {method.name!r} runs on the {chosen.name} modality, which cannot read dataset {dataset!r}; "
            f"choose one of {chosen.dataset_names()} or a prefixed path it accepts")
    return chosen


def check_device(device: str | torch.device) -> torch.device:
    """Parse ``device`` and make sure it exists here, before any data is loaded."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DataValidationError(f"--device {device!r} is not a device name; use cpu, cuda, cuda:1, mps, ...") \
            from exc
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DataValidationError(f"--device {device} asks for a GPU, but torch sees no CUDA device here; use "
                                      "--device cpu, or install a CUDA build of torch on a machine with a GPU")
        if parsed.index is not None and parsed.index >= count:
            raise DataValidationError(f"--device {device}: only {count} CUDA device(s) (0..{count - 1}) exist")
    elif parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DataValidationError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        try:
            torch.empty(0, device=parsed)
        except (RuntimeError, AssertionError) as exc:
            raise DataValidationError(f"--device {device} cannot be used here ({exc}); use --device cpu") from exc
    return parsed


def _describe_contents(out: Path) -> tuple[str, bool]:
    """What an existing output folder holds, and whether that includes a checkpoint to resume."""
    names = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
    checkpoint = out / CHECKPOINT
    if checkpoint.is_file() or (out / LEGACY_CHECKPOINT).is_file():
        what = f"the checkpoint of an earlier run ({(checkpoint if checkpoint.is_file() else LEGACY_CHECKPOINT)})"
        return what, True
    if (out / MANIFEST).is_file():
        return "an artifact (manifest.json)", False
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"files that distill did not write ({shown})", False


def check_out_dir(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to write into ``out`` when that could lose something already there.

    An existing, non-empty folder is written to only to continue its checkpoint (``resume``) or when ``overwrite``
    says so (distill's own files are then replaced; other files are left alone).
    """
    if out.exists() and not out.is_dir():
        raise DataValidationError(f"--out {out} is a file; give the path of a folder (it is created)")
    if not out.is_dir() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        return
    what, has_checkpoint = _describe_contents(out)
    if (resume and has_checkpoint) or overwrite:
        return
    if has_checkpoint:
        raise DataValidationError(f"--out {out} holds {what}; pass --resume to continue it, --overwrite to start over "
                                  "(the checkpoint is replaced), or choose another --out")
    hint = "" if not resume else " (--resume found no checkpoint there)"
    raise DataValidationError(f"--out {out} already holds {what}{hint}; pass --overwrite to write there anyway "
                              "(distill's own files are replaced, others are kept), or choose another --out")


def _check_run_numbers(*, seed: int, checkpoint_every: int, max_seconds: float | None,
                       protocol_overrides: dict[str, Any]) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise DataValidationError(message)

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    need(is_int(seed) and seed >= 0, f"--seed must be an integer >= 0, got {seed!r}")
    need(is_int(checkpoint_every) and checkpoint_every >= 0,
         f"--checkpoint-every must be an integer >= 1 (0: only at the end), got {checkpoint_every!r}")
    need(max_seconds is None or (isinstance(max_seconds, (int, float)) and not isinstance(max_seconds, bool)
                                 and 0 < max_seconds < float("inf")),
         f"--max-seconds must be a positive number of seconds, got {max_seconds!r}")
    for key, flag in (("n_models", "--models"), ("epochs", "--eval-epochs")):
        if key in protocol_overrides:
            value = protocol_overrides[key]
            need(is_int(value) and value >= 1, f"{flag} must be an integer >= 1, got {value!r}")


def check_eval_model(modality: Modality, model: str | None) -> None:
    """Refuse an evaluation architecture the modality does not have, before any data is loaded."""
    from .evaluation import KRR_MODELS

    known = [*modality.model_names(), *KRR_MODELS]
    if model is not None and modality.model_names() and model not in known:
        raise UnknownNameError(f"{modality.name} evaluation model", model, known)


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
    overwrite: bool = False,
    modality_name: str | None = None,
    compare_random: bool = False,
) -> RunOutcome:
    """Distill ``dataset`` with ``method_name`` into a summary of ``budget``, evaluate it and save the artifact.

    Input is validated before any compute: the method name, the config (types and ranges), the device, the
    evaluation model, the run's numbers, the output folder, the dataset and the budget. ``max_seconds`` ends the
    outer loop early once that much wall time has passed (the steps done are recorded).

    ``compare_random`` also evaluates a random real subset of the same size with the same protocol and seed, and
    stores its result in the manifest beside the summary's (``extra["random_subset_evaluation"]``).

    An ``out_dir`` that already holds a checkpoint, an artifact or other files is refused unless ``resume``
    (continue its checkpoint) or ``overwrite``; while the run writes there it holds a lock, so a second run into
    the same folder is refused.
    """
    method = build_method(method_name, overrides)
    protocol_overrides = dict(protocol_overrides or {})
    _check_run_numbers(seed=seed, checkpoint_every=checkpoint_every, max_seconds=max_seconds,
                       protocol_overrides=protocol_overrides)
    device = check_device(device)
    modality = resolve_modality(method, dataset, modality_name)
    method = _adapted(method, modality)
    check_eval_model(modality, protocol_overrides.get("model"))
    if out_dir is None or not is_writer():  # under torch.distributed only rank 0 writes (and holds the lock)
        return _distill(method, modality, dataset=dataset, budget=budget, seed=seed, root=root, out_dir=None,
                        resume=resume, evaluate=evaluate, protocol_overrides=protocol_overrides,
                        checkpoint_every=checkpoint_every, progress=progress, device=device, data=data,
                        max_seconds=max_seconds, callbacks=callbacks, compare_random=compare_random)
    out = Path(out_dir)
    check_out_dir(out, resume=resume, overwrite=overwrite)  # before the lock creates the folder
    created = not out.exists()
    try:
        with OutputLock(out):
            check_out_dir(out, resume=resume, overwrite=overwrite)  # again, now that no one else can write there
            if overwrite and not resume:
                for stale in (CHECKPOINT, LEGACY_CHECKPOINT):  # a fresh run must not leave another run's checkpoint
                    (out / stale).unlink(missing_ok=True)
            return _distill(method, modality, dataset=dataset, budget=budget, seed=seed, root=root, out_dir=out,
                            resume=resume, evaluate=evaluate, protocol_overrides=protocol_overrides,
                            checkpoint_every=checkpoint_every, progress=progress, device=device, data=data,
                            max_seconds=max_seconds, callbacks=callbacks, compare_random=compare_random)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run refused on its data leaves no empty folder behind
        raise


def _distill(
    method: Method[Any],
    modality: Modality,
    *,
    dataset: str,
    budget: Budget,
    seed: int,
    root: str | None,
    out_dir: Path | None,
    resume: bool,
    evaluate: bool,
    protocol_overrides: dict[str, Any],
    checkpoint_every: int,
    progress: bool,
    device: torch.device,
    data: RealData | None,
    max_seconds: float | None,
    callbacks: Sequence[Callback],
    compare_random: bool = False,
) -> RunOutcome:
    t0 = time.perf_counter()
    if data is None:
        with download_progress(progress):
            data = modality.load_dataset(dataset, root=root)
    data = modality.validate_data(data)
    sizes = modality.resolve_budget(budget, data)
    logger.debug("budget %s resolves to %d samples (%s per class)", budget.describe(), sum(sizes), sizes)
    t_load = time.perf_counter() - t0
    t_prepare = time.perf_counter()
    method.prepare(data, modality=modality, device=device, progress=progress)
    t_prepare = time.perf_counter() - t_prepare
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    summary = method.init_summary(data, budget=budget, modality=modality, generator=generator)
    wanted = getattr(method.config, "param", None)
    if wanted not in (None, "dense") and not isinstance(summary, ParameterizedSummary):
        raise DataValidationError(f"{method.name} builds its own {type(summary).__name__} and does not support "
                                  f"parameterized summaries (param={wanted!r}); leave param out")
    all_callbacks = [*method.callbacks(data, device), *callbacks,
                     *([TimeBudget(seconds=max_seconds)] if max_seconds else [])]
    distiller = Distiller(method=method, data=data, summary=summary, modality=modality, seed=seed, out_dir=out_dir,
                          checkpoint_every=checkpoint_every, progress=progress, device=device,
                          callbacks=all_callbacks)
    cpu0 = time.process_time()
    result = distiller.run(resume=resume)
    cpu_s = time.process_time() - cpu0
    selection = next((cb for cb in all_callbacks if isinstance(cb, ModelSelection)), None)
    final = method.finalize(result.summary if selection is None else selection.chosen(result.summary), data)
    artifact = Artifact(
        summary=final.cpu(),
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
            "prepare_wall_s": round(t_prepare, 3),
            "steps_per_s": round(result.steps_per_s, 4),
            "final_loss": result.losses[-1] if result.losses else None,
            "resumed_from": result.resumed_from,
            "distill_cpu_s": round(cpu_s, 2),
            "selection": "final",
            "max_seconds": max_seconds,
            **_storage(final),
            **(selection.describe() if selection is not None else {}),
            **method.extra_metadata(),
        },
    )
    evaluation = random_evaluation = None
    if evaluate:
        broadcast_tensors(artifact.summary.state_dict().values())  # every rank evaluates rank 0's summary
        protocol = method.eval_protocol(modality.default_protocol(data.describe(), artifact.summary),
                                        artifact.summary)
        if protocol_overrides:
            if protocol_overrides.get("model", protocol.model) != protocol.model and "model_kwargs" not in \
                    protocol_overrides:  # another architecture does not inherit the method's model options
                protocol = protocol.with_(model_kwargs={})
            protocol = protocol.with_(**protocol_overrides)
        evaluation = evaluate_summary(artifact.summary, data, modality=modality, protocol=protocol, seed=seed,
                                      device=device, progress=progress)
        artifact.evaluations.append(evaluation.to_dict())
        for key, (other, other_protocol) in method.extra_evaluations().items():
            artifact.extra[key] = evaluate_summary(other, data, modality=modality,
                                                   protocol=other_protocol or protocol, seed=seed, device=device,
                                                   progress=progress).to_dict()
        baseline = _adapted(build_method("random"), modality) if compare_random else None
        if baseline is not None and baseline.name != method.name:  # the modality's random subset, not itself
            subset = baseline.init_summary(data, budget=budget, modality=modality,
                                           generator=torch.Generator().manual_seed(seed))
            random_evaluation = evaluate_summary(subset, data, modality=modality, protocol=protocol, seed=seed,
                                                 device=device, progress=progress)
            artifact.extra["random_subset_evaluation"] = {
                "what": "a random real subset of the same size (seeded like the run), the same protocol",
                **random_evaluation.to_dict()}
    picture = None
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        artifact.save(out)
        try:
            picture = modality.render(artifact.summary, artifact.info, out / f"summary{modality.render_suffix()}")
        except NotImplementedError:
            picture = None
    return RunOutcome(artifact, result, evaluation, out, data, picture,
                      {"load_s": t_load, "prepare_s": t_prepare, "distill_s": result.wall_s}, random_evaluation)


def _storage(summary: Summary) -> dict[str, Any]:
    """The summary's float accounting for the manifest (summaries whose samples are not dense tensors have none)."""
    try:
        return {"storage": summary.storage()}
    except (AttributeError, RuntimeError, TypeError):
        return {}


def build_expert_store(method_name: str, *, dataset: str, n: int, epochs: int, overrides: dict[str, Any] | None = None,
                       root: str | None = None, workers: int = 1, device: str | torch.device = "cpu",
                       modality_name: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train experts ``0..n-1`` of a trajectory method's expert protocol to ``epochs`` epochs (only what the store
    lacks) and return the store's description and cost (``distill experts``)."""
    from .experts import build_experts, open_store
    from .trajectory import TrajectoryMatching

    method = build_method(method_name, overrides)
    if not isinstance(method, TrajectoryMatching):
        raise DataValidationError(f"{method_name!r} does not learn from expert trajectories; pass a trajectory "
                                  "method such as --method mtt, tesla or datm")
    device = check_device(device)
    modality = resolve_modality(method, dataset, modality_name)
    with download_progress(progress):
        data = modality.validate_data(modality.load_dataset(dataset, root=root))
    store = open_store(method.config.experts, data=data, modality=modality, protocol=method.expert_protocol(data))
    return build_experts(store, n=n, epochs=epochs, data=data, modality=modality, workers=workers, device=device,
                         progress=progress)


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
    with download_progress(progress):
        data = modality.load_dataset(artifact.dataset["name"], root=root, preprocessing=artifact.preprocessing)
    classes = getattr(artifact.summary, "num_classes", data.num_classes)
    if classes != data.num_classes:
        raise DataValidationError(f"the artifact's summary has {classes} classes but dataset "
                                  f"{artifact.dataset['name']!r} has {data.num_classes}; evaluate it on the data it "
                                  "was distilled from")
    if protocol is None:
        protocol = (EvalProtocol.from_dict(artifact.evaluations[0]["protocol"]) if artifact.evaluations
                    else modality.default_protocol(data.describe(), artifact.summary))
        seed = int(artifact.evaluations[0].get("seed", seed)) if artifact.evaluations else seed
    result = evaluate_summary(artifact.summary, data, modality=modality, protocol=protocol, seed=seed,
                              device=device, progress=progress)
    return result, data
