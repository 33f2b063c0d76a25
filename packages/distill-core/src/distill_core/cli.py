"""The ``distill`` command line: ``list | run | experts | eval | apply | show | export``.

``--json`` prints one machine-readable JSON object as the last line of output, so scripts can compare runs.
Errors from bad input print one line naming the problem and the fix and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .artifact import load_artifact
from .data import Budget
from .errors import DistillError
from .evaluation import EvalProtocol, EvalResult
from .selection import TIES

__all__ = ["main", "torchrun_command"]

logger = logging.getLogger("distill")


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill", description="Data distillation: learn a tiny summary of a "
                                     "training set that trains models almost as well as the full data.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="installed methods, modalities and datasets; with a method name, its paper, "
                             "documentation and every option with its default and allowed range")
    listing.add_argument("method", nargs="?", help="a method name (see `distill list`)")

    run = sub.add_parser("run", help="distill a dataset with a method, evaluate and save the artifact")
    run.add_argument("method", help="method name (see `distill list`)")
    run.add_argument("--dataset", required=True, help="dataset name or a prefixed path such as npz:PATH")
    size = run.add_mutually_exclusive_group(required=True)
    size.add_argument("--ipc", type=_int_at_least(1), help="samples per class")
    size.add_argument("--budget", type=_int_at_least(1), help="total summary size, spread over classes by frequency")
    size.add_argument("--ratio", type=float, help="summary size as a fraction of the training set")
    run.add_argument("--steps", type=_int_at_least(0), help="outer steps (default: the method's)")
    run.add_argument("--param", help="parameterization of the summary (dense, idc, linba, ...; `distill list` names "
                     "them); same as --set param=NAME")
    run.add_argument("--budget-floats", type=_int_at_least(1),
                     help="stored floats of a parameterized summary (default: the floats of --ipc / --budget)")
    run.add_argument("--seed", type=_int_at_least(0), default=0)
    run.add_argument("--config", help="JSON file of method options")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="one method option (JSON value), repeatable, e.g. --set lr_summary=0.5")
    run.add_argument("--out", help="artifact directory (default: runs/METHOD-DATASET-SIZE-sSEED)")
    run.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    run.add_argument("--overwrite", action="store_true",
                     help="write into an --out folder that already holds an artifact, a checkpoint or other files")
    run.add_argument("--modality", help="the modality that reads --dataset, for methods of any modality (random, "
                     "herding, kcenter) when more than one could")
    run.add_argument("--max-seconds", type=_positive_float, help="end distillation after this much wall time")
    run.add_argument("--root", help="folder holding the dataset files")
    run.add_argument("--models", type=_int_at_least(1), help="fresh models trained for evaluation (default 3)")
    run.add_argument("--eval-epochs", type=_int_at_least(1), help="epochs of evaluation training")
    run.add_argument("--eval-model", help="architecture used for evaluation")
    run.add_argument("--no-eval", action="store_true", help="skip evaluation")
    run.add_argument("--compare-random", action="store_true",
                     help="also evaluate a random real subset of the same size with the same protocol")
    run.add_argument("--checkpoint-every", type=_int_at_least(1), default=100, help="steps between checkpoints")
    run.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    run.add_argument("--nproc", type=_int_at_least(1), metavar="K",
                     help="processes on this machine: runs torchrun --standalone --nproc-per-node K with the same "
                     "arguments (classes, kernel blocks and evaluation models are shared over the processes; "
                     "OMP_NUM_THREADS defaults to cores // K); 1: in this process, as without it")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--json", action="store_true", help="print a JSON summary as the last line")

    experts = sub.add_parser("experts", help="train (or extend) the expert trajectories of trajectory matching "
                             "(mtt, tesla, datm) and print the store's cost")
    experts.add_argument("--dataset", required=True, help="dataset name or a prefixed path such as npz:PATH")
    experts.add_argument("--n", "--num-experts", dest="n", type=_int_at_least(1), required=True,
                         help="number of experts (under torchrun write --num-experts: torchrun reads --n as one of "
                              "its own options)")
    experts.add_argument("--epochs", type=_int_at_least(1), required=True, help="epochs per expert")
    experts.add_argument("--method", default="mtt", help="the trajectory method whose expert protocol to use")
    experts.add_argument("--config", help="JSON file of method options (model, model_kwargs, expert_* ...)")
    experts.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one method option")
    experts.add_argument("--experts", help="store folder (default: the user cache, keyed by data and protocol)")
    experts.add_argument("--workers", type=_int_at_least(1), default=1, help="parallel worker processes")
    experts.add_argument("--root", help="folder holding the dataset files")
    experts.add_argument("--modality", help="the modality that reads --dataset when more than one could")
    experts.add_argument("--device", default="cpu")
    experts.add_argument("--no-progress", action="store_true", help="no progress bar")

    ev = sub.add_parser("eval", help="evaluate a saved artifact (with its stored protocol by default)")
    ev.add_argument("artifact")
    ev.add_argument("--models", type=_int_at_least(1), help="number of fresh models")
    ev.add_argument("--model", help="architecture (cross-architecture evaluation)")
    ev.add_argument("--epochs", type=_int_at_least(1))
    ev.add_argument("--root", help="folder holding the dataset files")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--protocol-from", metavar="ARTIFACT",
                    help="evaluate exactly as ARTIFACT was evaluated (its stored protocol and seed), to compare two "
                    "artifacts of one dataset")
    ev.add_argument("--save", action="store_true", help="append the result to the artifact's manifest")
    ev.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="draw the summary (PNG grid for images, graph drawing, tokens for text)")
    show.add_argument("artifact")
    show.add_argument("--out", help="output file (default: inside the artifact directory)")
    show.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    _add_apply_parser(sub)

    export = sub.add_parser("export", help="export the summary for other tools (vision: .npz or .png of the decoded "
                            "samples; graph: .npz; text: JSON lines; recsys: CSV)")
    export.add_argument("artifact")
    export.add_argument("--out", required=True)
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return parser


def _add_apply_parser(sub: Any) -> None:
    """``distill apply continual | nas | privacy | federated``: the survey's applications of summaries
    (distill_core.applications)."""
    apply = sub.add_parser("apply", help="use summaries: class-incremental continual learning with a replay memory "
                           "(continual), an architecture-search proxy (nas), differentially private distillation "
                           "with a membership-inference audit (privacy), one-shot federated learning (federated)")
    kinds = apply.add_subparsers(dest="application", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dataset", required=True, help="dataset name or a prefixed path such as npz:PATH")
        p.add_argument("--steps", type=_int_at_least(0), help="outer steps of the method (default: the method's)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one method option")
        p.add_argument("--epochs", type=_int_at_least(1),
                       help="training epochs on each memory / proxy (default: the modality's evaluation protocol)")
        p.add_argument("--root", help="folder holding the dataset files")
        p.add_argument("--modality", help="the modality that reads --dataset when more than one could")
        p.add_argument("--device", default="cpu")
        p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")

    def application(name: str, about: str, method_help: str, **method_kw: Any) -> argparse.ArgumentParser:
        """One application's parser: its METHOD positional and the options every application takes."""
        p = kinds.add_parser(name, help=about)
        p.add_argument("method", help=method_help, **method_kw)
        common(p)
        return p

    def ipc(p: argparse.ArgumentParser, held: str = "") -> None:
        p.add_argument("--ipc", type=_int_at_least(1), default=10,
                       help=f"summary samples per class{held} (default 10)")

    def seeds(p: argparse.ArgumentParser, what: str = "") -> None:
        p.add_argument("--seeds", type=_int_at_least(1), default=1, help=f"runs with seeds 0..N-1{what}")

    def full_data(p: argparse.ArgumentParser, default: str) -> None:
        p.add_argument("--full-epochs", type=_int_at_least(1), help=f"epochs on the full data (default {default})")
        p.add_argument("--full-per-class", type=_int_at_least(1),
                       help="train the full-data model on this many samples per class instead of all (a CPU stand-in)")

    def test_subset(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument("--test-per-class", type=_int_at_least(1), metavar="N",
                       help=f"test {what} on N seeded test samples per class instead of all (a CPU stand-in)")

    cont = application("continual", "class-incremental learning: tasks of classes, a memory of --memory samples per "
                       "class built by METHOD from each task's data, average accuracy after each task and forgetting",
                       "memory method (dm, dc, random, herding, ...; 'none' with --training replay)")
    cont.add_argument("--tasks", type=_int_at_least(2), default=5, help="tasks (must divide the classes; default 5)")
    cont.add_argument("--memory", type=int, default=10, help="memory samples per class (>= 1; default 10)")
    cont.add_argument("--training", default="memory", help="'memory' (a fresh model on all memory so far, DM's "
                      "protocol; default) or 'replay' (one model on each task's real data + earlier memory)")
    seeds(cont, " (class orders)")
    cont.add_argument("--model", help="architecture (default: the modality's)")
    cont.add_argument("--no-shuffle", action="store_true", help="classes in order 0..K-1 instead of a seeded order")
    cont.add_argument("--select-every", type=_int_at_least(0), default=0, metavar="N",
                      help="validate each task's memory every N steps of METHOD on training samples held out of the "
                      "task and keep the best step (default 0: the final summary)")
    cont.add_argument("--validation-per-class", type=_int_at_least(1), default=20, metavar="N",
                      help="training samples per class held out for --select-every (default 20; never the test set)")
    cont.add_argument("--select-ties", choices=list(TIES), default="later",
                      help="--select-every's tie rule: keep the later (further-distilled) step unless an earlier one "
                      "validates strictly better (default), or the earlier one")

    nas = application("nas", "architecture-search proxy: Spearman rank correlation of architectures trained on a "
                      "summary (and on a random subset of the same size) with the full data",
                      "the method that distills the proxy summary")
    ipc(nas)
    nas.add_argument("--variants", type=_int_at_least(2), help="architectures drawn from the space (default: all)")
    full_data(nas, "30")
    nas.set_defaults(full_epochs=30)
    nas.add_argument("--seed", type=_int_at_least(0), default=0)
    test_subset(nas, "every variant")

    priv = application("privacy", "differentially private distillation at each --epsilons target (opacus "
                       "accounting), accuracy and a loss-threshold membership-inference attack (AUC) on models "
                       "trained on the summary, a random real subset of the same size and the full data",
                       "a private method (default dp-dm)", nargs="?", default="dp-dm")
    priv.add_argument("--epsilons", nargs="+", type=_epsilon, default=[1.0, 4.0, 10.0, None], metavar="EPS",
                      help="target epsilons, 'inf' for none (default: 1 4 10 inf)")
    priv.add_argument("--delta", type=_positive_float, default=1e-5, help="target delta (default 1e-5)")
    priv.add_argument("--accountant", default="rdp", help="opacus accountant: rdp (default) or prv")
    ipc(priv)
    seeds(priv)
    full_data(priv, "--epochs")
    priv.add_argument("--no-baselines", action="store_true", help="skip the random subset and the full data")
    priv.add_argument("--first-seed", type=_int_at_least(0), default=0,
                      help="seeds run from here (--seeds N: FIRST..FIRST+N-1; default 0)")
    priv.add_argument("--validation", type=_int_at_least(0), default=0, metavar="N",
                      help="hold out N training samples (stratified) as a public validation split for selecting "
                      "settings: everything is made from the rest (the protected set, which the accounted epsilon "
                      "covers) and accuracy on the split is reported next to test accuracy (default 0: none)")
    priv.add_argument("--validation-seed", type=_int_at_least(0), default=0, help="seed of the split (default 0)")

    fed = application("federated", "one-shot federated learning: a Dirichlet non-IID split over --clients, each "
                      "client distills its data with METHOD once, the server trains on the union; against random "
                      "subsets of the same size and FedAvg (accuracy and bytes)",
                      "the method each client distills with (dm, random, ...)")
    fed.add_argument("--clients", type=_int_at_least(2), default=10, help="clients (default 10)")
    fed.add_argument("--alpha", type=_positive_float, default=0.5, help="Dirichlet concentration (default 0.5)")
    ipc(fed, " held by a client (at most what it holds)")
    fed.add_argument("--rounds", type=_int_at_least(1), default=20, help="FedAvg rounds (default 20)")
    fed.add_argument("--local-epochs", type=_int_at_least(1), default=1, help="FedAvg local epochs (default 1)")
    fed.add_argument("--local-batch", type=_int_at_least(1), default=32, help="FedAvg local batch size (default 32)")
    fed.add_argument("--no-fedavg", action="store_true", help="skip FedAvg")
    fed.add_argument("--train-per-class", type=_int_at_least(1),
                     help="split this many seeded training samples per class instead of all (a CPU stand-in)")
    test_subset(fed, "the server's models and FedAvg after every round")
    fed.add_argument("--model", help="the server's and FedAvg's architecture (default: the modality's)")
    fed.add_argument("--model-kwargs", type=_json_object, metavar="JSON",
                     help='its constructor options as a JSON object, e.g. \'{"width": 32}\'')
    seeds(fed, " (splits)")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg}): {text!r}; pass a JSON object such as "
                                         "'{\"width\": 32}'") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"width\": 32}}', got {text!r}")
    return value


def _epsilon(text: str) -> float | None:
    if text.strip().lower() in ("inf", "infinity", "none"):
        return None
    return _positive_float(text)


def _cmd_apply(args: argparse.Namespace) -> int:
    from .applications import continual, federated, nas, privacy
    from .download import download_progress
    from .runner import build_method, check_device, resolve_modality

    options = _parse_sets(args.set)
    if args.application == "continual":
        config: Any = continual.ContinualConfig(
            method=args.method, tasks=args.tasks, memory_per_class=args.memory, training=args.training,
            seeds=list(range(args.seeds)), shuffle_classes=not args.no_shuffle, steps=args.steps,
            method_options=options, epochs=args.epochs, model=args.model, select_every=args.select_every,
            validation_per_class=args.validation_per_class, select_ties=args.select_ties)
        continual.check_config(config)
        probe = "random" if args.method == continual.NO_MEMORY else args.method
    elif args.application == "privacy":
        config = privacy.PrivacyConfig(
            method=args.method, epsilons=args.epsilons, delta=args.delta, accountant=args.accountant, ipc=args.ipc,
            steps=args.steps, method_options=options, seeds=list(range(args.first_seed, args.first_seed + args.seeds)),
            epochs=args.epochs, full_epochs=args.full_epochs, full_per_class=args.full_per_class,
            baselines=not args.no_baselines, validation=args.validation, validation_seed=args.validation_seed)
        privacy.check_config(config)
        probe = args.method
    elif args.application == "federated":
        config = federated.FederatedConfig(
            method=args.method, clients=args.clients, alpha=args.alpha, ipc=args.ipc, steps=args.steps,
            method_options=options, rounds=args.rounds, local_epochs=args.local_epochs, local_batch=args.local_batch,
            epochs=args.epochs, seeds=list(range(args.seeds)), compare_fedavg=not args.no_fedavg,
            train_per_class=args.train_per_class, test_per_class=args.test_per_class, model=args.model,
            model_kwargs=args.model_kwargs)
        federated.check_config(config)
        probe = args.method
    else:
        config = nas.NASConfig(method=args.method, ipc=args.ipc, steps=args.steps, method_options=options,
                               variants=args.variants, epochs=args.epochs, full_epochs=args.full_epochs,
                               full_per_class=args.full_per_class, seed=args.seed,
                               test_per_class=args.test_per_class)
        nas.check_config(config)
        probe = args.method
    device = check_device(args.device)
    modality = resolve_modality(build_method(probe), args.dataset, args.modality)
    with download_progress(True):
        data = modality.load_dataset(args.dataset, root=args.root)
    if args.application == "continual":
        continual.check_data(config, modality.validate_data(data))
        report = continual.run_continual(config, data, modality=modality, device=device).summary()
        print(f"continual ({config.training}, memory {config.method} x {config.memory_per_class}/class, "
              f"{config.tasks} tasks, {len(config.seeds)} seed(s)) on {args.dataset}")
        print("  seen-class accuracy after each task: " + ", ".join(
            f"{m:.2f}+-{s:.2f}" for m, s in zip(report["accuracy_per_task_mean"], report["accuracy_per_task_std"])))
        print(f"  forgetting {report['forgetting_mean']:.2f} +- {report['forgetting_std']:.2f}")
    elif args.application == "privacy":
        report = privacy.run_privacy(config, data, modality=modality, device=device).summary()
        print(f"privacy ({config.method}, ipc {config.ipc}, delta {config.delta:g}, {config.accountant} accountant, "
              f"{len(config.seeds)} seed(s)) on {args.dataset}")
        for name, cell in report["cells"].items():
            val = f"  validation {cell['val_accuracy_mean']:.2f}" if "val_accuracy_mean" in cell else ""
            print(f"  {name:<9} accuracy {cell['accuracy_mean']:.2f}+-{cell['accuracy_std']:.2f}  attack AUC "
                  f"{cell['auc_mean']:.3f}+-{cell['auc_std']:.3f}  TPR@1%FPR {cell['tpr_at_1pct_fpr_mean']:.3f}{val}")
    elif args.application == "federated":
        report = federated.run_federated(config, data, modality=modality, device=device).summary()
        print(f"federated ({config.clients} clients, Dirichlet alpha {config.alpha:g}, {config.method} ipc "
              f"{config.ipc}, {len(config.seeds)} seed(s)) on {args.dataset}")
        print(f"  one-shot {config.method} union: {report['summary_accuracy']}  random: {report['random_accuracy']}"
              f"  upload bytes {report['summary_upload_bytes']}")
        if config.compare_fedavg:
            print(f"  FedAvg {config.rounds} rounds x {config.local_epochs} local epoch(s): "
                  f"{report['fedavg_final_accuracy']}  ({report['fedavg_bytes_per_round']} bytes per round)")
    else:
        report = nas.run_nas(config, data, modality=modality, device=device).summary()
        print(f"nas proxy ({config.method}, ipc {config.ipc}, {report['n_variants']} architectures) on "
              f"{args.dataset}")
        print(f"  spearman summary {report['spearman_summary']}  random {report['spearman_random']}")
        print(f"  time saved: summary {report['time_saved_summary']} (incl. distillation), random "
              f"{report['time_saved_random']}")
    report["dataset"] = args.dataset
    if args.json:
        print(json.dumps(report))
    return 0


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise DistillError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def _cmd_describe(name: str) -> int:
    import dataclasses
    import inspect

    from .method import field_range
    from .registry import get_method

    cls = get_method(name)
    print(f"{name} ({cls.modality or 'any modality'}){': ' + cls.paper if cls.paper else ''}")
    module_doc = inspect.getmodule(cls).__doc__ if inspect.getmodule(cls) else None
    for text in (module_doc, cls.__doc__, cls.config_class.__doc__):
        if text:
            print("\n" + inspect.cleandoc(text))
    print("\noptions (--set KEY=VALUE, or a --config JSON file):")
    config = cls.config_class()
    for f in dataclasses.fields(cls.config_class):
        allowed = field_range(f).describe()
        kind = f.type.__name__ if isinstance(f.type, type) else str(f.type).replace("typing.", "")
        print(f"  {f.name} = {json.dumps(getattr(config, f.name), default=str)}  [{kind}"
              f"{'; ' + allowed if allowed != 'finite' and kind in ('int', 'float') else ''}]")
        if f.metadata.get("help"):
            print(f"      {f.metadata['help']}")
    return 0


def _cmd_list(method: str | None = None) -> int:
    from .registry import get_method, get_modality, list_methods, list_modalities

    if method:
        return _cmd_describe(method)

    print("methods:")
    for name in list_methods():
        try:
            cls = get_method(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            print(f"  {name:<12} {cls.modality or 'any':<8} {doc}")
        except ImportError as exc:
            print(f"  {name:<12} (cannot be imported: {exc})")
    print("modalities and datasets:")
    for name in list_modalities():
        try:
            print(f"  {name:<12} {', '.join(get_modality(name).dataset_names())}")
        except ImportError as exc:
            print(f"  {name:<12} (cannot be imported: {exc})")
    return 0


def _protocol_changes(*, models: int | None, epochs: int | None, model: str | None) -> dict[str, Any]:
    """The evaluation-protocol fields the command line sets (the ones given)."""
    given = {"n_models": models, "epochs": epochs, "model": model}
    return {key: value for key, value in given.items() if value is not None}


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less ``--nproc K`` / ``--nproc=K`` (and the abbreviations argparse accepts, ``--np K`` ...)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name, eq, _ = arg.partition("=")
        if len(name) >= len("--np") and "--nproc".startswith(name):
            skip = not eq
            continue
        kept.append(arg)
    return kept


def torchrun_command(argv: Sequence[str], nproc: int) -> tuple[list[str], dict[str, str]]:
    """The ``torchrun`` command line and environment that run ``distill ARGV`` (less ``--nproc``) in ``nproc``
    processes on this machine: ``python -m torch.distributed.run --standalone --nproc-per-node K -m
    distill_core.cli ...``, with ``OMP_NUM_THREADS`` = usable cores // K unless the caller set it."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, _usable_cores() // nproc)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "distill_core.cli", *_without_nproc(argv)]
    return command, env


def _launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``distill ARGV`` under torchrun with ``nproc`` processes and return its exit status."""
    import subprocess

    command, env = torchrun_command(argv, nproc)
    logger.info("launching %d processes (OMP_NUM_THREADS=%s): %s", nproc, env["OMP_NUM_THREADS"],
                " ".join(command[1:]))
    proc = subprocess.Popen(command, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Ctrl-C in a terminal reaches torchrun too, which stops its workers
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            return proc.wait()


def _cmd_run(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    if args.nproc is not None and args.nproc > 1:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 or "TORCHELASTIC_RUN_ID" in os.environ:
            from .errors import DataValidationError

            raise DataValidationError("--nproc starts torchrun itself; under torchrun (or another launcher) drop "
                                      "--nproc and set the process count there")
        return _launch(argv, args.nproc)
    from .runner import distill, load_config_file

    overrides: dict[str, Any] = load_config_file(args.config) if args.config else {}
    overrides.update(_parse_sets(args.set))
    if args.steps is not None:
        overrides["steps"] = args.steps
    if args.param is not None:
        overrides["param"] = args.param
    if args.budget_floats is not None:
        overrides["budget_floats"] = args.budget_floats
    budget = Budget(ipc=args.ipc, total=args.budget, ratio=args.ratio)
    size = f"ipc{args.ipc}" if args.ipc else f"n{args.budget}" if args.budget else f"r{args.ratio}"
    out = args.out or str(Path("runs") / f"{args.method}-{args.dataset.replace(':', '_').replace('/', '_')}-{size}"
                                         f"-s{args.seed}")
    protocol_overrides = _protocol_changes(models=args.models, epochs=args.eval_epochs, model=args.eval_model)
    from .distributed import init_from_env, is_writer

    init_from_env(args.device)  # under torchrun: join the group; evaluation models are spread over the ranks
    outcome = distill(args.method, dataset=args.dataset, budget=budget, seed=args.seed, overrides=overrides,
                      root=args.root, out_dir=out, resume=args.resume, evaluate=not args.no_eval,
                      protocol_overrides=protocol_overrides, checkpoint_every=args.checkpoint_every,
                      progress=not args.no_progress and is_writer(), device=args.device, max_seconds=args.max_seconds,
                      overwrite=args.overwrite, modality_name=args.modality, compare_random=args.compare_random)
    if not is_writer():
        return 0  # rank 0 reports and writes
    summary = outcome.artifact.summary
    print(f"{args.method} on {args.dataset}: {summary.budget} samples ({outcome.artifact.extra['budget_per_class']} "
          f"per class), {outcome.run.steps} steps in {outcome.run.wall_s:.1f} s")
    report: dict[str, Any] = {
        "method": args.method, "dataset": args.dataset, "budget": outcome.artifact.extra["budget_per_class"],
        "total": summary.budget, "steps": outcome.run.steps, "distill_wall_s": round(outcome.run.wall_s, 3),
        "artifact": str(outcome.out_dir), "picture": str(outcome.picture) if outcome.picture else None,
    }
    if outcome.evaluation is not None:
        ev = outcome.evaluation
        print(f"  summary      test {ev.metric} {ev}")
        report.update(_result_fields(ev), protocol=ev.protocol.to_dict(), labels=ev.label_kind,
                      eval_wall_s=round(ev.wall_s, 2))
        if getattr(ev, "metrics", None):  # modalities reporting more than one number (recsys: per-learner metrics)
            report["metrics"] = ev.metrics
        rnd = outcome.random_evaluation
        if rnd is not None:
            print(f"  random real  test {rnd.metric} {rnd}")
            report.update({f"random_{k}": v for k, v in _result_fields(rnd).items() if k != "metric"})
    print(f"  artifact: {outcome.out_dir}" + (f"  picture: {outcome.picture}" if outcome.picture else ""))
    if args.json:
        print(json.dumps(report))
    return 0


def _cmd_experts(args: argparse.Namespace) -> int:
    from .runner import build_expert_store, load_config_file

    overrides: dict[str, Any] = load_config_file(args.config) if args.config else {}
    overrides.update(_parse_sets(args.set))
    if args.experts:
        overrides["experts"] = args.experts
    from .distributed import init_from_env, is_writer

    init_from_env(args.device)  # under torchrun: the missing experts are shared out over the ranks, one store
    report = build_expert_store(args.method, dataset=args.dataset, n=args.n, epochs=args.epochs, overrides=overrides,
                                root=args.root, workers=args.workers, device=args.device,
                                modality_name=args.modality, progress=not args.no_progress and is_writer())
    if not is_writer():
        return 0  # rank 0 reports
    print(f"expert store {report['root']}: {report['experts']} expert(s), {report['expert_epochs_trained']} "
          f"expert-epochs trained now in {report['wall_s']:.1f} s, {report['disk_mb_per_expert']} MB per expert")
    print(json.dumps(report))
    return 0


def _result_fields(result: EvalResult) -> dict[str, Any]:
    """The JSON fields of a result, named after its metric (``accuracy_mean`` only where it is an accuracy)."""
    key = "accuracy" if result.metric == "accuracy" else "value"
    return {"metric": result.metric, f"{key}_mean": round(result.mean, 3), f"{key}_std": round(result.std, 3)}


def _cmd_eval(args: argparse.Namespace) -> int:
    from .registry import get_modality
    from .runner import check_device, check_eval_model, evaluate_artifact

    check_device(args.device)
    artifact = load_artifact(args.artifact)
    check_eval_model(get_modality(artifact.modality), args.model)
    stored = artifact.evaluations[0] if artifact.evaluations else None
    if args.protocol_from:
        other = load_artifact(args.protocol_from)
        if not other.evaluations:
            raise DistillError(f"{args.protocol_from} holds no evaluation to copy the protocol from; evaluate it "
                               "first with `distill eval ... --save`")
        if other.dataset.get("name") != artifact.dataset.get("name"):
            raise DistillError(f"{args.protocol_from} was evaluated on {other.dataset.get('name')!r}, not on "
                               f"{artifact.dataset.get('name')!r}; compare artifacts of one dataset")
        stored = other.evaluations[0]
        print(f"note: evaluating with the protocol of {args.protocol_from} ({stored['protocol'].get('model')})")
    protocol = EvalProtocol.from_dict(stored["protocol"]) if stored else None
    changes = _protocol_changes(models=args.models, epochs=args.epochs, model=args.model)
    if changes:
        base = protocol or get_modality(artifact.modality).default_protocol(artifact.dataset, artifact.summary)
        protocol = base.with_(**changes)
        print(f"note: evaluating with a protocol different from the stored one ({changes})")
    start = time.perf_counter()
    result, _ = evaluate_artifact(artifact, root=args.root, protocol=protocol, device=args.device,
                                  seed=int(stored.get("seed", 0)) if stored else 0)
    print(f"{artifact.method} ({artifact.dataset['name']}, {artifact.summary.budget} samples): test {result.metric} "
          f"{result}")
    if stored and not changes and not args.protocol_from:
        print(f"  stored: {stored['accuracy_mean']:.2f} +- {stored['accuracy_std']:.2f}")
    if args.save:
        artifact.add_evaluation(args.artifact, result.to_dict())
    if args.json:
        print(json.dumps({"artifact": args.artifact, "method": artifact.method,
                          "dataset": artifact.dataset["name"], "budget": artifact.summary.budget,
                          **_result_fields(result), "accuracies": [round(a, 3) for a in result.accuracies],
                          "protocol": result.protocol.to_dict(), "labels": result.label_kind,
                          "wall_s": round(time.perf_counter() - start, 2)}))
    return 0


def _write_output(out: Path, write: Callable[[Path], Path]) -> Path:
    """Run a modality's writer on a temporary file beside ``out`` and rename it into place (atomic, umask)."""
    from .files import atomic_write_with

    def into(tmp: Path) -> None:
        written = Path(write(tmp))
        if written != tmp:  # a writer that appended its own suffix
            os.replace(written, tmp)

    return atomic_write_with(out, into)


def _cmd_show(args: argparse.Namespace) -> int:
    from .files import check_new_file
    from .registry import get_modality

    artifact = load_artifact(args.artifact)
    modality = get_modality(artifact.modality)
    if args.out:  # the default picture inside the artifact is derived from it and may always be redrawn
        out = check_new_file(args.out, overwrite=args.overwrite, what="--out")
    else:
        out = Path(args.artifact) / f"summary{modality.render_suffix()}"
    print(_write_output(out, lambda tmp: modality.render(artifact.summary, artifact.info, tmp)))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .files import check_new_file
    from .registry import get_modality

    out = check_new_file(args.out, overwrite=args.overwrite, what="--out")
    artifact = load_artifact(args.artifact)
    modality = get_modality(artifact.modality)
    print(_write_output(out, lambda tmp: modality.export(artifact.summary, artifact.info, tmp)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from .distributed import close_group

    finished = False
    try:
        code = _dispatch(args, argv)
        finished = True
        return code
    except DistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NotImplementedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        close_group(wait=finished)  # under torchrun: every rank leaves the group before exiting


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    if args.command == "list":
        return _cmd_list(args.method)
    if args.command == "run":
        return _cmd_run(args, argv)
    if args.command == "experts":
        return _cmd_experts(args)
    if args.command == "eval":
        return _cmd_eval(args)
    if args.command == "apply":
        return _cmd_apply(args)
    if args.command == "show":
        return _cmd_show(args)
    return _cmd_export(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
