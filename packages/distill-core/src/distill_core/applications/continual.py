"""Class-incremental continual learning with a replay memory built by any distill method.

The protocol follows DM's continual-learning experiment (Zhao & Bilen, WACV 2023, https://arxiv.org/abs/2110.04181;
reference ``CL_DM.py`` of VICO-UoE/DatasetCondensation): the classes are split into ``tasks`` groups in a seeded
random order; at each task the memory of that task's classes is built from that task's training data only
(``memory_per_class`` samples per class, by a distill method such as ``dm`` or ``dc``, or the coresets ``random``
and ``herding``), and a model is trained and tested on all classes seen so far. Two training regimes:

- ``"memory"`` (DM's protocol, the default): at every task a fresh model is trained from scratch on the memory of
  all tasks so far, and nothing else.
- ``"replay"`` (experience replay, e.g. Rebuffi et al., iCaRL, CVPR 2017): one model is trained on, task after task,
  the current task's real training data plus the memory of the earlier tasks, the memory repeated until it is
  about as large as the task's real data (balanced replay: ER draws one memory batch per real batch, Chaudhry et
  al. 2019, https://arxiv.org/abs/1902.10486; without it 10 memory samples per class among hundreds of new ones
  are forgotten as if absent). ``method="none"`` replays nothing (naive fine-tuning: the forgetting lower bound).

After each task ``t`` the model is tested on the test samples of every task ``j <= t`` (the accuracy matrix
``R[t][j]``); reported are the average accuracy over all seen classes' test samples after each task (DM's metric)
and the average forgetting (Chaudhry et al., ECCV 2018, https://arxiv.org/abs/1801.10112):
``mean_j<T-1 max_{j<=t<T-1} R[t][j] - R[T-1][j]``. One head over all classes (class-incremental: the task is not
given at test time).

Why our own loop and not avalanche-lib (the field's library, preferred where it works beside our torch): it does
not import beside the CPU build of torch. ``pip install avalanche-lib`` next to ``torch==2.13.0+cpu`` resolves
without a second torch, but it takes ``torchvision 0.28.0`` from PyPI, which is built for CUDA (it bundles
``libcudart`` and ``libnvjpeg``), and ``import avalanche.benchmarks`` then fails with ``RuntimeError: operator
torchvision::nms does not exist`` (checked in a fresh virtual environment, avalanche-lib 0.6.0). The matching CPU
torchvision is published only on the PyTorch package index, which an install from PyPI alone does not reach; the
package would also add about 60 further packages (wandb, tensorboard, matplotlib, pytorchcv, ...). The protocol
above needs only a class split, a memory and an accuracy matrix, written here in a few functions; the metrics are
checked against hand-computed accuracy matrices in the tests.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import Budget, ClassIndex, RealData, hold_out_validation
from ..errors import DataValidationError, UnknownNameError
from ..modality import Modality
from ..protocol import EvalProtocol
from ..selection import TIES

if TYPE_CHECKING:
    from ..method import Method
    from ..selection import ModelSelection
    from ..synset import Summary

__all__ = ["ContinualConfig", "ContinualResult", "average_accuracy", "average_forgetting", "class_order",
           "run_continual", "split_tasks"]

logger = logging.getLogger(__name__)

TRAINING = ("memory", "replay")
#: the memory-less lower bound (replay training only)
NO_MEMORY = "none"


@dataclass
class ContinualConfig:
    """Settings of one class-incremental run (the CLI's ``distill apply continual``)."""

    method: str = field(default="dm", metadata={
        "help": "how each task's memory is built: any registered method (dm, dc, random, herding, ...); 'none' "
        "keeps no memory (replay training only)"})
    tasks: int = field(default=5, metadata={"help": "number of tasks; must divide the number of classes"})
    memory_per_class: int = field(default=10, metadata={"help": "memory samples per class (ipc of each task)"})
    training: str = field(default="memory", metadata={
        "help": "'memory': a fresh model on all memory so far at each task (DM's protocol); 'replay': one model "
        "trained on each task's real data plus the earlier tasks' memory"})
    seeds: list[int] = field(default_factory=lambda: [0], metadata={
        "help": "one run per seed: its class order, memories and model initialisation"})
    shuffle_classes: bool = field(default=True, metadata={"help": "seeded random class order (else 0..K-1)"})
    steps: int | None = field(default=None, metadata={"help": "outer steps of the memory method (None: its own)"})
    method_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the method's options"})
    epochs: int | None = field(default=None, metadata={
        "help": "training epochs per task (None: the modality's evaluation protocol)"})
    model: str | None = field(default=None, metadata={"help": "architecture (None: the modality's default)"})
    model_kwargs: dict[str, Any] | None = field(default=None, metadata={
        "help": "the architecture's options (None: the protocol's, e.g. {'width': 32})"})
    select_every: int = field(default=0, metadata={
        "help": "validate each task's memory every N steps of its method on a validation split of the task's "
        "training data and keep the best (0: keep the final summary)"})
    validation_per_class: int = field(default=20, metadata={
        "help": "training samples per class held out of each task for select_every (never the test set)"})
    select_ties: str = field(default="later", metadata={
        "help": "select_every's tie rule: 'later' keeps the further-distilled summary unless an earlier one "
        "validates strictly better (a small task's validation split often saturates at 100%); 'earlier' keeps the "
        "earlier one, the start on a saturated split"})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ContinualResult:
    """Per seed: the class order, the accuracy matrix ``R[t][j]`` (in %, ``None`` above the diagonal), the
    average accuracy after each task and the average forgetting; their mean and std over seeds."""

    config: ContinualConfig
    protocol: EvalProtocol
    orders: list[list[int]]
    matrices: list[list[list[float | None]]]
    accuracy_per_task: list[list[float]]
    forgetting: list[float]
    memory_sizes: list[int]
    wall_s: float
    memory_wall_s: float
    kept_steps: list[list[int | None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        per_task = list(zip(*self.accuracy_per_task))
        final = [accs[-1] for accs in self.accuracy_per_task]
        return {
            "application": "continual",
            "method": self.config.method,
            "training": self.config.training,
            "tasks": self.config.tasks,
            "memory_per_class": self.config.memory_per_class,
            "seeds": self.config.seeds,
            "accuracy_per_task_mean": [round(statistics.fmean(a), 3) for a in per_task],
            "accuracy_per_task_std": [round(_std(a), 3) for a in per_task],
            "final_accuracy_mean": round(statistics.fmean(final), 3),
            "final_accuracy_std": round(_std(final), 3),
            "forgetting_mean": round(statistics.fmean(self.forgetting), 3),
            "forgetting_std": round(_std(self.forgetting), 3),
            "memory_size_final": self.memory_sizes[-1],
            "orders": self.orders,
            "matrices": [[[None if v is None else round(v, 3) for v in row] for row in m] for m in self.matrices],
            "protocol": self.protocol.to_dict(),
            "config": self.config.to_dict(),
            "wall_s": round(self.wall_s, 2),
            "memory_wall_s": round(self.memory_wall_s, 2),
            **({"kept_steps": self.kept_steps} if self.config.select_every else {}),
        }


def _std(values: Sequence[float]) -> float:
    return statistics.pstdev(values) if len(values) > 1 else 0.0


# -- metrics -------------------------------------------------------------------------------------------------------
def average_accuracy(correct: Sequence[Sequence[int]], counts: Sequence[int]) -> list[float]:
    """Average accuracy (%) over all seen classes' test samples after each task: ``100 * sum_{j<=t} correct[t][j] /
    sum_{j<=t} counts[j]`` (DM's metric; on balanced test sets the mean of ``R[t][:t+1]``).

    Args:
        correct: ``correct[t][j]`` test samples of task ``j`` classified right after task ``t`` (``j <= t``).
        counts: test samples of each task.
    """
    return [100.0 * sum(correct[t][: t + 1]) / max(1, sum(counts[: t + 1])) for t in range(len(correct))]


def average_forgetting(matrix: Sequence[Sequence[float | None]]) -> float:
    """Average forgetting (Chaudhry et al. 2018) of an accuracy matrix ``R[t][j]`` (``T`` tasks): over the tasks
    ``j < T - 1``, the best accuracy on task ``j`` before the last task minus the accuracy after it. 0 for one task."""
    last = len(matrix) - 1
    if last < 1:
        return 0.0
    drops = []
    for j in range(last):
        best = max(float(matrix[t][j]) for t in range(j, last))  # type: ignore[arg-type]
        drops.append(best - float(matrix[last][j]))  # type: ignore[arg-type]
    return statistics.fmean(drops)


# -- tasks ---------------------------------------------------------------------------------------------------------
def class_order(num_classes: int, *, seed: int, shuffle: bool = True) -> list[int]:
    """The classes in the order the tasks meet them (seeded random permutation, or ``0..K-1``)."""
    if not shuffle:
        return list(range(num_classes))
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed)).tolist()


def split_tasks(order: Sequence[int], tasks: int) -> list[list[int]]:
    """``order`` cut into ``tasks`` consecutive groups of equal size."""
    if tasks < 1 or len(order) % tasks:
        divisors = [d for d in range(1, len(order) + 1) if len(order) % d == 0]
        raise DataValidationError(f"{tasks} tasks do not divide {len(order)} classes into equal groups; use a "
                                  f"divisor of {len(order)} ({divisors})")
    size = len(order) // tasks
    return [list(order[i * size:(i + 1) * size]) for i in range(tasks)]


def _class_subset(data: RealData, classes: Sequence[int]) -> RealData:
    """The training and test samples of ``classes``, relabelled ``0..len(classes)-1`` in that order."""
    remap = torch.full((data.num_classes,), -1, dtype=torch.long)
    remap[torch.as_tensor(list(classes))] = torch.arange(len(classes))
    train = remap[data.y_train.cpu()] >= 0
    test = remap[data.y_test.cpu()] >= 0
    return RealData(f"{data.name}[classes {list(classes)}]", data.x_train[train], remap[data.y_train.cpu()[train]],
                    data.x_test[test], remap[data.y_test.cpu()[test]], len(classes),
                    [data.class_names[c] for c in classes], data.preprocessing, dict(data.extra))


# -- validation ----------------------------------------------------------------------------------------------------
def check_config(config: ContinualConfig) -> None:
    """Refuse bad settings before any data is loaded."""
    from ..registry import list_methods

    if config.training not in TRAINING:
        raise UnknownNameError("continual training", config.training, TRAINING)
    if config.method == NO_MEMORY:
        if config.training != "replay":
            raise DataValidationError("method 'none' keeps no memory, so memory-only training has nothing to train "
                                      "on; use --training replay, or a memory method such as dm, random, herding")
    elif config.method not in list_methods():
        raise UnknownNameError("memory method", config.method, [*list_methods(), NO_MEMORY])
    if not isinstance(config.memory_per_class, int) or config.memory_per_class < 1:
        raise DataValidationError(f"memory_per_class must be at least one sample per class, got "
                                  f"{config.memory_per_class!r}; use --memory 1 or more")
    if not isinstance(config.tasks, int) or config.tasks < 2:
        raise DataValidationError(f"continual learning needs at least 2 tasks, got {config.tasks!r}")
    if not config.seeds or any(not isinstance(s, int) or s < 0 for s in config.seeds):
        raise DataValidationError(f"seeds must be integers >= 0 (at least one), got {config.seeds!r}")
    if config.epochs is not None and config.epochs < 1:
        raise DataValidationError(f"epochs must be >= 1, got {config.epochs}")
    if not isinstance(config.select_every, int) or config.select_every < 0:
        raise DataValidationError(f"select_every must be an integer >= 0 (0: the final summary), got "
                                  f"{config.select_every!r}")
    if config.select_every and config.method == NO_MEMORY:
        raise DataValidationError("select_every picks a step of the memory method; method 'none' has none")
    if config.select_ties not in TIES:
        raise UnknownNameError("select_ties rule", config.select_ties, list(TIES))
    if not isinstance(config.validation_per_class, int) or config.validation_per_class < 1:
        raise DataValidationError(f"validation_per_class must be at least 1, got {config.validation_per_class!r}")


def check_data(config: ContinualConfig, data: RealData) -> None:
    """Refuse data that cannot hold the protocol: tasks that do not divide the classes, empty classes, a memory
    larger than a class, tasks with fewer classes than the memory method learns from."""
    split_tasks(list(range(data.num_classes)), config.tasks)
    per_task = data.num_classes // config.tasks
    if config.method != NO_MEMORY:
        from ..registry import get_method

        needed = get_method(config.method).min_classes
        if per_task < needed:
            raise DataValidationError(f"method {config.method!r} needs at least {needed} classes per task to learn "
                                      f"from (its loss is constant on one class), but {config.tasks} tasks of "
                                      f"{data.num_classes} classes hold {per_task}; use --tasks "
                                      f"{data.num_classes // needed} or fewer, or a class-wise method such as dm")
    counts = data.class_counts()
    test_counts = torch.bincount(data.y_test.cpu(), minlength=data.num_classes).tolist()
    empty = [data.class_names[c] for c in range(data.num_classes) if counts[c] == 0 or test_counts[c] == 0]
    if empty:
        raise DataValidationError(f"{data.name}: classes {empty} have no training or no test sample; every class "
                                  "of a task must have both")
    held = config.validation_per_class if config.select_every else 0
    if config.method != NO_MEMORY and config.memory_per_class + held > min(counts):
        c = counts.index(min(counts))
        also = f" plus {held} held out for validation" if held else ""
        raise DataValidationError(f"{data.name}: a memory of {config.memory_per_class} per class{also} is larger "
                                  f"than class {data.class_names[c]!r} ({counts[c]} training samples); use --memory "
                                  f"{counts[c] - held} or less")
    if held and 2 * held > min(counts):
        c = counts.index(min(counts))
        raise DataValidationError(f"{data.name}: validation_per_class={held} would hold out more than half of class "
                                  f"{data.class_names[c]!r} ({counts[c]} training samples); lower it")


# -- the protocol --------------------------------------------------------------------------------------------------
def distill_in_process(method_name: str, options: dict[str, Any], steps: int | None, data: RealData, *,
                       modality: Modality, seed: int, device: torch.device,
                       init: Callable[[Method[Any], torch.Generator], Summary],
                       selection: ModelSelection | None = None) -> Summary:
    """Distill ``data`` with ``method_name`` in this process and return the summary the run keeps: the runner's
    outer loop (the method's callbacks, its model-selection pick, :meth:`Method.finalize`) without the runner's data
    checks and artifact, for the applications' small pieces of data (a one-class task, a client's share).

    Args:
        options: method options; ``steps`` (when not ``None``) overrides the method's.
        init: makes the starting summary from the prepared method and a generator seeded with ``seed``.
        selection: keeps the best candidate instead of the method's own selection or the final summary.
    """
    from ..distiller import Distiller
    from ..runner import _adapted, build_method
    from ..selection import ModelSelection

    overrides = dict(options)
    if steps is not None:
        overrides["steps"] = steps
    method = _adapted(build_method(method_name, overrides), modality)
    method.prepare(data, modality=modality, device=device, progress=False)
    torch.manual_seed(seed)
    summary = init(method, torch.Generator().manual_seed(seed))
    callbacks = list(method.callbacks(data, device))
    if selection is not None:
        callbacks = [cb for cb in callbacks if not isinstance(cb, ModelSelection)] + [selection]
    result = Distiller(method=method, data=data, summary=summary, modality=modality, seed=seed, out_dir=None,
                       progress=False, device=device, callbacks=callbacks).run()
    selection = next((cb for cb in callbacks if isinstance(cb, ModelSelection)), None)
    return method.finalize(result.summary if selection is None else selection.chosen(result.summary), data)


def build_task_memory(config: ContinualConfig, data: RealData, classes: Sequence[int], *, modality: Modality,
                      seed: int, device: torch.device,
                      protocol: EvalProtocol | None = None,
                      kept: list[int | None] | None = None) -> tuple[Tensor, Tensor, str]:
    """The memory of one task: ``config.method`` run on the task's classes only (relabelled), its samples and
    targets mapped back to all ``data.num_classes`` classes.

    Returns:
        ``(x, targets, label_kind)``; targets ``(n, num_classes)``.

    With ``config.select_every``, ``config.validation_per_class`` training samples per class are held out of the
    task and the memory is the summary of the step that validates best (:func:`step_selection`), with models trained
    as ``protocol`` (default: :func:`task_protocol`) says; the kept step is appended to ``kept``.
    """
    # the runner's outer loop without its data check, which refuses the one-class data of a one-class task
    subset = _class_subset(data, classes)
    selection = None
    if config.select_every:
        subset, val = hold_out_validation(subset, n_val=config.validation_per_class * len(classes), seed=seed)
        selection = step_selection(val, modality=modality, protocol=protocol or task_protocol(config, data, modality),
                                   every=config.select_every, seed=seed, device=device, ties=config.select_ties)
    summary = distill_in_process(
        config.method, config.method_options, config.steps, subset, modality=modality, seed=seed, device=device,
        init=lambda method, generator: method.init_summary(subset, budget=Budget(ipc=config.memory_per_class),
                                                           modality=modality, generator=generator),
        selection=selection)
    if selection is not None:
        if kept is not None:
            kept.append(selection.best.get("step"))
        logger.info("classes %s: kept step %s of %s (validation accuracy %.2f%%)", list(classes),
                    selection.best.get("step"), [h["step"] for h in selection.history], selection.best.get("score"))
    x, targets = (t.detach().cpu() for t in summary.materialize())
    full = torch.zeros(len(targets), data.num_classes, dtype=targets.dtype)
    full[:, torch.as_tensor(list(classes))] = targets
    return x, full, summary.label_kind


def _correct_per_task(model: torch.nn.Module, data: RealData, task_classes: Sequence[Sequence[int]],
                      upto: int, device: torch.device) -> list[int]:
    from ..training import accuracy

    correct = []
    for classes in task_classes[: upto + 1]:
        mask = torch.isin(data.y_test, torch.as_tensor(list(classes), device=data.y_test.device))
        x, y = data.x_test[mask].to(device), data.y_test[mask].to(device)
        correct.append(round(accuracy(model, x, y) * len(y) / 100.0))
    return correct


def step_selection(val: RealData, *, modality: Modality, protocol: EvalProtocol, every: int, seed: int,
                   device: torch.device, ties: str = "later") -> ModelSelection:
    """Keep the summary of the step (the start, every ``every`` steps, and the last) whose one model, trained as
    ``protocol`` says, scores the best accuracy on ``val``'s held-out split
    (:func:`~distill_core.data.hold_out_validation`); ties keep the later step (``ties="later"``: the method's own
    further-distilled summary unless an earlier one validates strictly better) or the earlier one.

    The tie rule matters: a 2-class task's split of 20 samples per class scores 100% for most candidates on easy
    pairs, and keeping the earlier step there keeps the start (DC on Fashion-MNIST 5 x 2 with ties to the earlier
    step kept the start in 13 of 15 tasks, although its summaries of the hardest pair, T-shirt vs shirt, improve
    with the steps on that pair's test samples)."""
    from ..evaluation import evaluate_summary
    from ..selection import ModelSelection

    one = protocol.with_(n_models=1)

    def validate(distiller: Any, step: int) -> dict[str, float]:
        result = evaluate_summary(distiller.summary, val, modality=modality, protocol=one, seed=seed, device=device)
        return {"val_accuracy": float(result.accuracies[0])}

    return ModelSelection(validate=validate, metric="val_accuracy", due=every, start_is_candidate=True, ties=ties,
                          rule=f"best validation accuracy of the start and every {every} steps (ties: {ties})")


def task_protocol(config: ContinualConfig, data: RealData, modality: Modality) -> EvalProtocol:
    """The protocol every task's model is trained with: the modality's, with the config's model and epochs."""
    protocol = base_protocol(data, modality)
    changes: dict[str, Any] = {"n_models": 1}
    if config.epochs is not None:
        changes["epochs"] = config.epochs
    if config.model is not None and config.model != protocol.model:
        changes.update(model=config.model, model_kwargs={})
    if config.model_kwargs is not None:
        changes["model_kwargs"] = dict(config.model_kwargs)
    return protocol.with_(**changes)


def base_protocol(data: RealData, modality: Modality) -> EvalProtocol:
    """The modality's evaluation protocol for ``data`` (asked with a one-sample-per-class real summary, since
    there is no single summary here)."""
    index = ClassIndex(data.y_train, data.num_classes)
    probe = modality.subset_summary(data, torch.cat([index.indices[c][:1] for c in range(data.num_classes)]))
    return modality.default_protocol(data.describe(), probe)


def run_continual(config: ContinualConfig, data: RealData, *, modality: Modality,
                  device: torch.device | str = "cpu", progress: bool = False) -> ContinualResult:
    """Run the class-incremental protocol of the module docstring once per seed in ``config.seeds``."""
    from ..training import init_model_, train_classifier

    check_config(config)
    data = modality.validate_data(data)
    check_data(config, data)
    device = torch.device(device)
    protocol = task_protocol(config, data, modality)
    start = time.perf_counter()
    memory_s = 0.0
    orders, matrices, curves, forgetting, sizes = [], [], [], [], []
    kept_steps: list[list[int | None]] = []
    test_counts = torch.bincount(data.y_test.cpu(), minlength=data.num_classes).tolist()
    for seed in config.seeds:
        order = class_order(data.num_classes, seed=seed, shuffle=config.shuffle_classes)
        task_classes = split_tasks(order, config.tasks)
        counts = [sum(test_counts[c] for c in classes) for classes in task_classes]
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        index = ClassIndex(data.y_train, data.num_classes)
        memory_x: list[Tensor] = []
        memory_t: list[Tensor] = []
        kinds: set[str] = set()
        model = None
        correct: list[list[int]] = []
        matrix: list[list[float | None]] = []
        kept: list[int | None] = []
        for t, classes in enumerate(task_classes):
            t0 = time.perf_counter()
            new_memory = None
            if config.method != NO_MEMORY:
                new_memory = build_task_memory(config, data, classes, modality=modality, seed=seed * config.tasks + t,
                                               device=device, protocol=protocol, kept=kept)
                kinds.add(new_memory[2])
            memory_s += time.perf_counter() - t0
            if config.training == "memory":
                assert new_memory is not None
                memory_x.append(new_memory[0])
                memory_t.append(new_memory[1])
                x_train, targets = torch.cat(memory_x), torch.cat(memory_t)
            else:
                real = torch.cat([index.indices[c] for c in classes])
                x_real = data.x_train[real].cpu()
                t_real = F.one_hot(data.y_train[real].cpu(), data.num_classes).to(x_real.dtype)
                x_train, targets = x_real, t_real
                if memory_x:  # balanced replay: the memory, repeated, weighs as much as the task's real data
                    x_mem, t_mem = torch.cat(memory_x), torch.cat(memory_t).to(x_real.dtype)
                    repeat = max(1, round(len(x_real) / len(x_mem)))
                    x_train = torch.cat([x_real, x_mem.repeat(repeat, *[1] * (x_mem.dim() - 1))])
                    targets = torch.cat([t_real, t_mem.repeat(repeat, 1)])
                if new_memory is not None:  # this task's memory is replayed from the next task on
                    memory_x.append(new_memory[0])
                    memory_t.append(new_memory[1])
            label_kind = "regression" if "regression" in kinds else "soft"  # soft CE = CE on one-hot targets
            if config.training == "memory" or model is None:
                model = modality.build_model(protocol.model, sample_shape=data.sample_shape,
                                             num_classes=data.num_classes, **protocol.model_kwargs).to(device)
                init_model_(model, protocol.init)
            train_classifier(model, x_train.to(device), targets.to(device), label_kind=label_kind, protocol=protocol,
                             augment=modality.augmenter(protocol.augment), generator=generator)
            correct.append(_correct_per_task(model, data, task_classes, t, device))
            matrix.append([100.0 * correct[t][j] / counts[j] if j <= t else None for j in range(config.tasks)])
            logger.info("seed %d task %d (classes %s): seen-class accuracy %.2f%%", seed, t, classes,
                        average_accuracy(correct, counts)[-1])
        orders.append(order)
        matrices.append(matrix)
        curves.append(average_accuracy(correct, counts))
        forgetting.append(average_forgetting(matrix))
        kept_steps.append(kept)
        sizes = [sum(len(m) for m in memory_x[: t + 1]) for t in range(len(memory_x))] or [0]
    return ContinualResult(config, protocol, orders, matrices, curves, forgetting, sizes,
                           time.perf_counter() - start, memory_s, kept_steps)
