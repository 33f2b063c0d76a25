"""Benchmarks of distill-core's applications (``distill apply``) on scikit-learn's 8x8 digits (continual learning
also on Fashion-MNIST and MNIST), CPU. Data folders in stored commands are written as ``MNIST_DIR`` etc. where they
were machine-specific.

- ``continual``: class-incremental learning on ``--dataset`` (default digits; ``fashion-mnist`` / ``mnist`` read from
  ``--root``, the folder of the four IDX files), 5 tasks of 2 classes (``--tasks 10``: 10 of 1) in a seeded class
  order per seed, DM's protocol
  (``--training memory``: at each task a fresh ConvNet is trained from scratch on the memory of all tasks so far),
  memories of ``--memory`` images per class built per task from that task's classes only by DM, random and herding;
  seen-class test accuracy after each task and average forgetting, mean +- std over ``--seeds`` seeds (class orders).
  ``--epochs`` (training epochs per task), ``--steps`` (outer steps per task of every distillation method: ``dm``,
  ``dc``, ...), ``--model`` (each task's model) and ``--set`` (the method's options, e.g. ``batch_real``,
  ``model_kwargs`` of its network) set the cost; the table
  has one block per dataset and number of tasks (rows of different datasets are never mixed), each with its
  settings line.
- ``nas``: the architecture-search proxy: ``--variants`` ConvNets drawn from the vision modality's space (depth,
  width, norm, activation, pooling), each trained on a DM summary, on a random real subset of the same size and on
  the full digits training set; Spearman rank correlation with the full-data accuracies (all, top 5 / 10 / 20) and
  the training time saved.
- ``privacy``: DP-DM (vision's ``dp-dm``: Poisson-sampled real batches, per-sample embeddings clipped to
  ``clip_norm``, Gaussian noise on the class means, opacus RDP accounting, delta 1e-5) at each target epsilon, from
  noise; one ConvNet per seed trained on each summary, on a random real subset of the same size and on the full
  digits training set; test accuracy and a loss-threshold membership-inference attack (AUC, TPR at 1% FPR; members:
  the training samples the set was made from, non-members: the test set). ``--init-real`` adds the non-private DM
  started from real images (epsilon inf, the "privacy for free" setting).
- ``privacy-select``: the same audit with its settings picked on a validation split, never the test set:
  ``--validation`` training samples (stratified, seeded) are held out as public data outside the protected set
  (``distill apply privacy --validation``); stage ``select`` distills at every ``--grid-steps`` x
  ``--grid-batch-real`` setting and epsilon from the rest (``--select-seeds`` seeds from ``--select-first-seed``,
  disjoint from the final seeds) and scores one ConvNet per summary on the held-out samples; stage ``final`` takes,
  per epsilon, the setting of the highest validation accuracy (ties: fewer steps, then the smaller batch) and
  measures the audit's rows with ``--seeds`` seeds (test accuracy, attack, the random subset and the full data, all
  from the protected set). Cells already in ``results.jsonl`` are not rerun.
- ``federated``: digits split over 10 clients by a Dirichlet(alpha) draw per class; each client distills its data
  once with DM (``--ipc`` per class it holds, at most what it holds); the server trains one ConvNet on the union;
  against every client sending a random subset of the same sizes (the same bytes) and FedAvg (``--rounds`` rounds,
  ``--local-epochs`` local epochs, all clients every round); accuracy and bytes.
- ``table``: rewrite ``results.md`` from ``results.jsonl``.

Each cell is one ``distill apply ... --json`` in a fresh process (``harness.run_cell``); its JSON report, the
command and the machine context go to ``results.jsonl`` (newest row per key kept in the table). Run one at a time::

    python benchmarks/applications/run.py continual --methods dm random herding --seeds 3
    python benchmarks/applications/run.py continual --dataset fashion-mnist --root /usr/share/datasets/fashion-mnist
    python benchmarks/applications/run.py nas --variants 50
    python benchmarks/applications/run.py privacy --seeds 3
    python benchmarks/applications/run.py privacy-select --stages select final --init-real
    python benchmarks/applications/run.py federated --seeds 3
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.jsonl"
TABLE = HERE / "results.md"


def _cell(args: list[str], **extra: Any) -> dict[str, Any]:
    row = harness.run_cell("-m", "distill_core.cli", "apply", *args, "--json", env={"OMP_NUM_THREADS": "1"})
    assert row is not None
    row["command"] = "distill apply " + " ".join(args) + " --json"
    row.update(extra)
    row.update(harness.machine_context())
    harness.append_jsonl(RESULTS, row)
    return row


def continual(ns: argparse.Namespace) -> None:
    for method in ns.methods:
        args = ["continual", method, "--dataset", ns.dataset, "--tasks", str(ns.tasks), "--memory", str(ns.memory),
                "--seeds", str(ns.seeds), "--epochs", str(ns.epochs)]
        if ns.root:
            args += ["--root", ns.root]
        if ns.model:
            args += ["--model", ns.model]
        if method not in harness.CORESETS:  # a distillation method: its steps per task and options (coresets take none)
            args += ["--steps", str(ns.steps)]
            for opt in ns.set or []:
                args += ["--set", opt]
            if ns.select_every:
                args += ["--select-every", str(ns.select_every), "--validation-per-class",
                         str(ns.validation_per_class), "--select-ties", ns.select_ties]
        row = _cell(args)
        print(method, row["accuracy_per_task_mean"], row["forgetting_mean"], flush=True)
    table()


def nas(ns: argparse.Namespace) -> None:
    args = ["nas", "dm", "--dataset", ns.dataset, "--ipc", str(ns.ipc), "--steps", str(ns.steps),
            "--variants", str(ns.variants), "--epochs", str(ns.epochs), "--full-epochs", str(ns.full_epochs)]
    if ns.root:
        args += ["--root", ns.root]
    if ns.full_per_class:
        args += ["--full-per-class", str(ns.full_per_class)]
    if ns.test_per_class:
        args += ["--test-per-class", str(ns.test_per_class)]
    for opt in ns.set or []:
        args += ["--set", opt]
    row = _cell(args)
    print(row["spearman_summary"], row["spearman_random"], row["time_saved_summary"], flush=True)
    table()


def privacy(ns: argparse.Namespace) -> None:
    options = [f"batch_real={ns.batch_real}", f"clip_norm={ns.clip_norm}"]
    variants = [] if ns.only_init_real else [(list(ns.epsilons), options)]
    if ns.init_real or ns.only_init_real:
        variants.append((["inf"], [*options, "init=\"real\""]))
    for i, (epsilons, opts) in enumerate(variants):
        args = ["privacy", "dp-dm", "--dataset", ns.dataset, "--epsilons", *epsilons, "--ipc", str(ns.ipc),
                "--steps", str(ns.steps), "--seeds", str(ns.seeds), "--epochs", str(ns.epochs), "--full-epochs",
                str(ns.full_epochs)]
        if i or ns.no_baselines or ns.only_init_real:  # the baselines do not depend on the summary: measured once
            args.append("--no-baselines")
        if ns.full_per_class:
            args += ["--full-per-class", str(ns.full_per_class)]
        for opt in opts:
            args += ["--set", opt]
        row = _cell(args)
        print({k: (v["accuracy_mean"], v["auc_mean"]) for k, v in row["cells"].items()}, flush=True)
    table()


#: the key of a grid point of ``privacy-select``: (dataset, validation size, steps, batch_real, clip_norm)
GridKey = tuple[str, int, int, int, float]


def _grid_key(r: dict[str, Any]) -> GridKey:
    opts = r["config"]["method_options"]
    return (_dataset(r), int(r["validation_size"]), int(r["config"]["steps"]), int(opts["batch_real"]),
            float(opts["clip_norm"]))


def _grid(rows: list[dict[str, Any]]) -> dict[GridKey, dict[str, Any]]:
    """The newest ``privacy-select`` grid cell per grid point."""
    return {_grid_key(r): r for r in rows if r["application"] == "privacy" and r.get("stage") == "select"}


def _picks(grid: dict[GridKey, dict[str, Any]], dataset: str, validation: int) -> dict[str, tuple[GridKey, float]]:
    """Per epsilon (``"eps=1"``, ...): the grid point of the highest mean validation accuracy and that accuracy;
    ties go to fewer steps, then the smaller batch (the cheaper setting)."""
    best: dict[str, tuple[GridKey, float]] = {}
    for key in sorted(grid, key=lambda k: (k[2], k[3], k[4])):
        if key[:2] != (dataset, validation):
            continue
        for name, cell in grid[key]["cells"].items():
            if name.startswith("eps=") and (name not in best or cell["val_accuracy_mean"] > best[name][1]):
                best[name] = (key, cell["val_accuracy_mean"])
    return best


def privacy_select(ns: argparse.Namespace) -> None:
    base = ["privacy", "dp-dm", "--dataset", ns.dataset, "--ipc", str(ns.ipc), "--epochs", str(ns.epochs),
            "--validation", str(ns.validation), "--validation-seed", str(ns.validation_seed)]
    if ns.root:
        base += ["--root", ns.root]
    if ns.full_per_class:
        base += ["--full-per-class", str(ns.full_per_class)]

    def options(batch_real: int, extra: tuple[str, ...] = ()) -> list[str]:
        return [a for opt in (f"batch_real={batch_real}", f"clip_norm={ns.clip_norm}", *(ns.set or []), *extra)
                for a in ("--set", opt)]

    if "select" in ns.stages:
        for steps in ns.grid_steps:
            for batch_real in ns.grid_batch_real:
                key = (ns.dataset, ns.validation, steps, batch_real, ns.clip_norm)
                if key in _grid(harness.read_jsonl(RESULTS)):
                    print("measured before:", key, flush=True)
                    continue
                row = _cell([*base, "--epsilons", *ns.epsilons, "--steps", str(steps), "--seeds",
                             str(ns.select_seeds), "--first-seed", str(ns.select_first_seed), "--no-baselines",
                             *options(batch_real)], stage="select")
                print(key, {k: v["val_accuracy_mean"] for k, v in row["cells"].items()}, row["wall_s"], flush=True)
    if "final" in ns.stages:
        # the picks of this dataset's grid, or (--picks-from) of another dataset's, carried over untuned
        source = (ns.picks_from, ns.picks_validation) if ns.picks_from else (ns.dataset, ns.validation)
        picks = _picks(_grid(harness.read_jsonl(RESULTS)), *source)
        wanted = [f"eps={e}" for e in ns.epsilons]
        missing = [n for n in wanted if n not in picks]
        if missing:
            raise SystemExit(f"no grid cell of {source[0]} measured {missing} at validation {source[1]}: run "
                             "--stages select")
        groups: dict[GridKey, list[str]] = {}
        for name in wanted:
            groups.setdefault(picks[name][0], []).append(name.removeprefix("eps="))
        variants = [(key, eps, ()) for key, eps in groups.items()]
        if ns.init_real:  # DM from real images (no privacy) at the setting picked for eps=inf
            variants.append((picks["eps=inf"][0], ["inf"], ('init="real"',)))
        for i, (key, eps, extra) in enumerate(variants):
            args = [*base, "--epsilons", *eps, "--steps", str(key[2]), "--seeds", str(ns.seeds), "--full-epochs",
                    str(ns.full_epochs), *options(key[3], extra)]
            if i or ns.no_baselines:  # the baselines do not depend on the summary: measured once
                args.append("--no-baselines")
            selection = {f"eps={e}": {"steps": key[2], "batch_real": key[3], "clip_norm": key[4],
                                      "val_accuracy": picks[f"eps={e}"][1],
                                      **({"picked_on": list(source)} if ns.picks_from else {})} for e in eps}
            command = "distill apply " + " ".join(args) + " --json"
            if any(r.get("stage") == "final" and r["command"] == command and r["selection"] == selection
                   for r in harness.read_jsonl(RESULTS)):
                print("measured before:", command, flush=True)
                continue
            row = _cell(args, stage="final", selection=selection)
            print(eps, extra, {k: (v["val_accuracy_mean"], v["accuracy_mean"], v["auc_mean"])
                               for k, v in row["cells"].items()}, row["wall_s"], flush=True)
    table()


def federated(ns: argparse.Namespace) -> None:
    args = ["federated", ns.method, "--dataset", ns.dataset, "--clients", str(ns.clients), "--alpha", str(ns.alpha),
            "--ipc", str(ns.ipc), "--steps", str(ns.steps), "--rounds", str(ns.rounds), "--local-epochs",
            str(ns.local_epochs), "--local-batch", str(ns.local_batch), "--seeds", str(ns.seeds), "--epochs",
            str(ns.epochs), "--set", f"batch_real={ns.batch_real}"]
    if ns.root:
        args += ["--root", ns.root]
    if ns.train_per_class:
        args += ["--train-per-class", str(ns.train_per_class)]
    if ns.test_per_class:
        args += ["--test-per-class", str(ns.test_per_class)]
    if ns.model:
        args += ["--model", ns.model]
    if ns.model_kwargs:
        args += ["--model-kwargs", ns.model_kwargs]
    for opt in ns.set or []:
        args += ["--set", opt]
    row = _cell(args)
    print(row["summary_accuracy"], row["random_accuracy"], row.get("fedavg_final_accuracy"), flush=True)
    table()


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def _rho(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(_: argparse.Namespace | None = None) -> None:
    rows = harness.read_jsonl(RESULTS)
    cont = list(harness.latest([{**r, "_dataset": _dataset(r),
                                 "_select": (r["config"].get("select_every") or 0, "kept_steps" in r,
                                             r["config"].get("select_ties", "earlier")),
                                 "_options": json.dumps(r["config"].get("method_options") or {}, sort_keys=True)}
                                for r in rows if r["application"] == "continual"],
                               ["_dataset", "method", "training", "tasks", "memory_per_class", "_select",
                                "_options"]).values())
    nas_rows = list(harness.latest([{**r, "_dataset": _dataset(r)} for r in rows if r["application"] == "nas"],
                                   ["_dataset", "method", "ipc"]).values())
    names = _DATASET_NAMES
    others = [names.get(d, d) for d in dict.fromkeys(_dataset(r) for r in cont) if d != "digits"]
    lines = ["# Applications on " + ", ".join(["digits", *others[:-1]]) + (f" and {others[-1]}" if others else "")
             + " (CPU)", "",
             "Written by `benchmarks/applications/run.py` from `results.jsonl`; the protocols are stated in its "
             "docstring and in packages/distill-core/README.md (Applications). Each row's command is in "
             "`results.jsonl`.", ""]
    if cont:
        lines += ["## Class-incremental continual learning", "",
                  "Seen-class test accuracy (%) after each task, mean ± std over seeds (each seed its own class "
                  "order); forgetting in points (Chaudhry et al. 2018). One table per dataset and number of tasks; "
                  "rows of different datasets are not comparable.", ""]
    datasets = sorted({r["_dataset"] for r in cont}, key=lambda d: (d != "digits", d))
    for dataset, tasks in [(d, t) for d in datasets
                           for t in sorted({len(r["accuracy_per_task_mean"]) for r in cont if r["_dataset"] == d})]:
        columns: list[harness.Column] = [("memory", _memory_name), ("training", "training"),
                                         ("per class", "memory_per_class"), ("seeds", lambda r: len(r["seeds"]))]
        columns += [(f"after task {t + 1}", lambda r, t=t: _pm(r["accuracy_per_task_mean"][t],
                                                                r["accuracy_per_task_std"][t])) for t in range(tasks)]
        columns += [("forgetting", lambda r: _pm(r["forgetting_mean"], r["forgetting_std"])),
                    ("epochs per task", lambda r: r["protocol"]["epochs"]),
                    ("method steps", lambda r: r["config"]["steps"] if r["config"]["steps"] is not None else "-"),
                    ("wall s", "wall_s")]
        group = [r for r in cont if r["_dataset"] == dataset and len(r["accuracy_per_task_mean"]) == tasks]
        classes = len(group[0]["orders"][0]) // tasks
        lines += [f"{_DATASET_NAMES.get(dataset, dataset)}, {tasks} tasks of {classes} "
                  f"class{'es' if classes > 1 else ''}:", ""]
        if dataset != "digits":
            lines += [_continual_settings(group), ""]
        lines += [*harness.md_table(columns, group), ""]
        if dataset == "digits" and any(r["method"] == "dc" for r in group):
            lines += [_DC_NOTE, ""]
        elif any(r["method"] == "dc" for r in group):
            lines += [_memory_summary(group, "dc"), ""]
        if any(r["method"] == "text-dm" for r in group):
            lines += [_memory_summary(group, "text-dm") + " The text modality's DM is the same class-wise "
                      "embedding-mean matching over token embeddings (random TextCNN learners as the embedding "
                      "networks), so this table is the protocol on a second modality.", ""]
    if nas_rows:
        lines += ["## Architecture-search proxy", "",
                  "Spearman rank correlation of the proxy's test accuracies with the full-data ones over all "
                  "variants and over the full-data top 5 / 10 / 20; training times in seconds; time saved = 1 - "
                  "(proxy training + distillation) / full-data training.", ""]
        for r in nas_rows:
            for proxy, key, extra in (("DM summary", "summary", r["distill_s"]), ("random subset", "random", 0.0)):
                rho = r[f"spearman_{key}"]
                r.setdefault("_lines", []).append({
                    "dataset": _DATASET_NAMES.get(r["_dataset"], r["_dataset"]), "proxy": proxy,
                    "n": r["n_variants"], "size": f"{r['ipc']}/class",
                    "all": _rho(rho["all"]), "top5": _rho(rho["top5"]), "top10": _rho(rho["top10"]),
                    "top20": _rho(rho["top20"]), "train_s": r["train_s"][key], "distill_s": extra,
                    "full_s": r["train_s"]["full"], "saved": r[f"time_saved_{key}"],
                    "pick": r[f"full_accuracy_of_{key}_pick"], "best": r["best_full_accuracy"]})
        lines += [line for r in nas_rows for line in (_nas_settings(r), "")]
        cols: list[harness.Column] = [(h, h) for h in ("dataset", "proxy", "n", "size", "all", "top5", "top10", "top20",
                                                        "train_s", "distill_s", "full_s", "saved")]
        cols += [("full acc. of proxy's pick", "pick"), ("best full acc.", "best")]
        lines += [*harness.md_table(cols, [line for r in nas_rows for line in r["_lines"]]), ""]
    lines += _privacy_lines(rows) + _federated_lines(rows)
    harness.write_markdown(TABLE, lines)


def _nas_settings(r: dict[str, Any]) -> str:
    config = r["config"]
    full = (f"the full-data stand-in ({r['full_size']} images: {config['full_per_class']} seeded training samples per "
            "class)" if config.get("full_per_class") else f"the full data ({r['full_size']} images)")
    options = config.get("method_options") or {}
    test = (f"; every model tested on {config['test_per_class']} seeded test samples per class"
            if config.get("test_per_class") else "")
    return (f"Settings ({_DATASET_NAMES.get(r['_dataset'], r['_dataset'])}, {r['method']} ipc {r['ipc']}"
            + (f", options {json.dumps(options, sort_keys=True)}" if options else "")
            + f"): proxies trained {r['protocol']['epochs']} epochs, {full} {config['full_epochs']} epochs, "
            f"{r['method']} {config['steps']} steps{test}; accuracies of the full-data variants range "
            f"{min(r['full_accuracies']):.1f}-{r['best_full_accuracy']:.1f}%." + _above_chance(r))


def _above_chance(r: dict[str, Any]) -> str:
    """The correlations without the variants the full data leaves at chance (ties at the bottom of its ranking)."""
    from scipy.stats import spearmanr

    classes = _NUM_CLASSES.get(_dataset(r), 10)
    keep = [i for i, a in enumerate(r["full_accuracies"]) if a > 100.0 / classes + 1.0]
    if len(keep) == len(r["full_accuracies"]) or len(keep) < 3:
        return ""
    full = [r["full_accuracies"][i] for i in keep]
    rho = {key: spearmanr(full, [r[f"{key}_accuracies"][i] for i in keep])[0] for key in ("summary", "random")}
    return (f" Without the {len(r['full_accuracies']) - len(keep)} variants the full data leaves at chance (within 1 "
            f"point of {100.0 / classes:.0f}%), over the other {len(keep)}: summary {rho['summary']:.2f}, random "
            f"subset {rho['random']:.2f}.")


#: what the DC memory rows measured (digits, 5 tasks of 2 classes)
_DC_NOTE = (
    "**DC memories with DC's IPC-10 loops lose to random real samples here; with one matching round and one network "
    "epoch per step they beat it.** DC with its IPC-10 loops (10 matching rounds, 50 network epochs between them), "
    "20 steps per task, final step: one seed's task-1 memory collapsed, and one task's summary is not monotone in the "
    "steps (classes 5 and 6: 100% on the task's test samples after 5 and 15 steps, 35.6 / 30.0 / 23.3% after 10 / "
    "20 / 30; with 1 network epoch between rounds, or 1 round per step, 100% after 20). With `--select-every` and "
    "ties to the earlier step the start, i.e. random real samples, was kept in 12 of 15 tasks (IPC-10 loops) and 13 "
    "of 15 (IPC-1 loops, 200 steps): a random 10-per-class memory already scores about 99% on a 2-class digits task "
    "(random row, after task 1), so the held-out split ties. DC with the IPC-1 loops (`inner_loop=1, "
    "outer_loop=1`), 200 steps per task and its final step ends above random (+1.35) and herding (+0.75) after the "
    "last task, below DM (-1.19). The IPC-10 loops are the reference's for 10 classes of 10 images; a likely cause "
    "of their collapse on a 2-class task of 20 images, not shown: 50 network epochs per round fit the task's "
    "2-output network to the summary, whose matched gradients then carry little.")


def _memory_summary(group: list[dict[str, Any]], method: str) -> str:
    """What the memory rows of ``method`` in one table measure against random, herding and DM after the last
    task."""
    def last(r: dict[str, Any]) -> str:
        return _pm(r["accuracy_per_task_mean"][-1], r["accuracy_per_task_std"][-1])

    base = {r["method"]: r for r in group if r["method"] in ("random", "herding", "dm") and r["method"] != method}
    parts = []
    for r in (r for r in group if r["method"] == method):
        gaps = ", ".join(f"{name} {r['accuracy_per_task_mean'][-1] - b['accuracy_per_task_mean'][-1]:+.2f}"
                         for name, b in base.items())
        parts.append(f"{_memory_name(r)}: {last(r)} ({gaps})")
    text = (f"**{method.upper()} memories after the last task**, against the other memories of this table: "
            + "; ".join(parts) + ".")
    if method == "dc":
        text += (" With the earlier step kept on a tie, the start (random real samples) is kept wherever the task's "
                 "held-out split scores the same for every candidate, as it does on easy 2-class tasks; the final "
                 "step is the method's own summary.")
    return text


def _memory_name(r: dict[str, Any]) -> str:
    """The memory column: the method, its options (DM's are in the settings line) and its step selection."""
    opts = r["config"].get("method_options") or {}
    name = r["method"] + ("" if r["method"] == "dm" or not opts else
                          " (" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(opts.items())) + ")")
    every = r["config"].get("select_every") or 0
    if not every:
        return name
    held = r["config"]["validation_per_class"]
    if "kept_steps" not in r:  # rows before the start was a candidate
        return f"{name} (step picked on validation, every {every}; {held}/class held out)"
    kept = [s for seed in r["kept_steps"] for s in seed]
    ties = r["config"].get("select_ties", "earlier")  # rows before the tie rule was an option kept the earlier
    return (f"{name} (start or a step of every {every} picked on validation, {held}/class held out, ties to the "
            f"{ties}; kept the start in {kept.count(0)} of {len(kept)} tasks)")


def _dataset(r: dict[str, Any]) -> str:
    return r.get("dataset", "digits")


#: classes per dataset where it is not 10 (the NAS rows do not store it)
_NUM_CLASSES = {"trec": 6}
_DATASET_NAMES = {"digits": "digits", "fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "trec": "TREC-6 (text)"}


def _method_settings(group: list[dict[str, Any]], method: str) -> str:
    """``"DM 200 steps per task (options {...})"`` for a distillation method of a continual table."""
    rows = [r for r in group if r["method"] == method and r["config"]["steps"] is not None]
    steps = " / ".join(dict.fromkeys(str(r["config"]["steps"]) for r in rows))
    opts = dict.fromkeys(json.dumps(r["config"].get("method_options") or {}, sort_keys=True) for r in rows)
    return f"{method.upper()} {steps} steps per task" + "".join(f" (options {o})" for o in opts if o != "{}")


def _continual_settings(group: list[dict[str, Any]]) -> str:
    """The settings line of a continual table: model, training epochs per task, the distillation methods' steps
    (DC's options are in its rows' names)."""
    def values(get: Any) -> str:
        return " / ".join(str(v) for v in dict.fromkeys(get(r) for r in group))
    methods = [m for m in dict.fromkeys(r["method"] for r in group if r["config"]["steps"] is not None) if m != "dc"]
    image = group[0]["dataset"] in ("fashion-mnist", "mnist")
    return (f"Settings: memory {values(lambda r: r['memory_per_class'])} per class, model "
            f"{values(lambda r: r['protocol']['model'])}, each task's model trained "
            f"{values(lambda r: r['protocol']['epochs'])} epochs on the memory so far (the same for every memory "
            f"method), {', '.join(_method_settings(group, m) for m in methods) or 'no distillation method'}"
            + ("; the digits protocol (ConvNet, 300 epochs, 200 DM steps, DM's default options) is reduced where "
               "these differ, for CPU cost." if image else "."))


def _eps_value(name: str) -> float:
    value = name.removeprefix("eps=")
    return math.inf if value == "inf" else float(value)


def _privacy_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The DP section from the ``privacy-select`` rows: the grid scored on the validation split, the picks, the
    final rows. The earlier ``privacy`` rows (settings picked on the test set) stay in results.jsonl only."""
    grid = _grid(rows)
    if not grid:
        return []
    first = next(iter(grid.values()))
    dataset, validation, protected = _dataset(first), first["validation_size"], first["protected_size"]
    picks = _picks(grid, dataset, validation)

    def current(r: dict[str, Any]) -> bool:  # a final row measured at the present picks
        return (r["application"] == "privacy" and r.get("stage") == "final" and _dataset(r) == dataset
                and r["validation_size"] == validation
                and all(picks.get(n, (None,))[0] == (dataset, validation, s["steps"], s["batch_real"], s["clip_norm"])
                        for n, s in r["selection"].items()))

    final = list(harness.latest([{**r, "_config": json.dumps(r["config"], sort_keys=True)} for r in rows
                                 if current(r)], ["dataset", "_config"]).values())
    split_seed = first["config"]["validation_seed"]
    lines = ["## Differential privacy and membership inference", "",
             "DP-DM (`dp-dm`): DM whose real class means are released by the subsampled Gaussian mechanism (Poisson "
             "sampling per class at rate q = batch_real / class size, each real embedding clipped to L2 norm C, "
             "N(0, (sigma C)^2) on each class sum, divided by the expected batch), started from noise; sigma from "
             "opacus' `get_noise_multiplier` (RDP accountant) for the target epsilon at delta 1e-5 over all steps, "
             "epsilon spent recomputed by the accountant. One ConvNet per seed on each training set; accuracy on "
             "the test set; loss-threshold attack (score = -cross-entropy): members = the protected training "
             "samples the set was made from (a summary: the whole protected set; the subset / full data: the "
             "samples trained on), non-members = the test set. Mean ± std over seeds.", "",
             f"**Selection on a validation split.** {validation} training samples ({dataset}, stratified, seed "
             f"{split_seed}: `distill_core.data.hold_out_validation`, `distill apply privacy --validation "
             f"{validation}`) are held out as public data outside the protected set: every summary, subset and "
             f"full-data model is made from the other {protected} training samples, the set the accounted epsilon "
             "covers (and the attack's members), and the selection touches only the held-out samples, never the "
             "test set. Selecting on the protected data itself would consume privacy budget (Papernot & Steinke, "
             "\"Hyperparameter tuning with Renyi differential privacy\", ICLR 2022). Each grid point below "
             "distills one summary per epsilon (seed(s) "
             f"{', '.join(map(str, next(iter(grid.values()))['seeds']))}, "
             "disjoint from the final seeds) and scores one ConvNet trained on it by its accuracy on the held-out "
             "samples; the pick per epsilon is the highest validation accuracy (ties: fewer steps, then the smaller "
             "batch). Validation accuracy (%), the pick in bold:", ""]
    keys = sorted((k for k in grid if k[:2] == (dataset, validation)), key=lambda k: (k[4], k[3], k[2]))
    names = sorted({n for k in keys for n in grid[k]["cells"]}, key=_eps_value)
    grid_rows = []
    for k in keys:
        line: dict[str, Any] = {"steps": k[2], "batch_real": k[3], "clip_norm": f"{k[4]:g}"}
        for n in names:
            cell = grid[k]["cells"].get(n)
            text = "-" if cell is None else f"{cell['val_accuracy_mean']:.2f}"
            line[f"{n} val %"] = f"**{text}**" if picks.get(n, (None,))[0] == k else text
        line["wall s"] = f"{grid[k]['wall_s']:.0f}"
        grid_rows.append(line)
    lines += [*harness.md_table([(h, h) for h in grid_rows[0]], grid_rows), ""]
    all_steps, all_batches = sorted({k[2] for k in keys}), sorted({k[3] for k in keys})
    missing = [f"{st} x {b}" for st in all_steps for b in all_batches
               if not any(k[2:4] == (st, b) for k in keys)]
    edge = [n for n in names if picks[n][0][2] == all_steps[-1]]
    lines += [f"Grid: {len(keys)} points x {len(names)} epsilons, {sum(grid[k]['wall_s'] for k in keys):.0f} s in "
              "all" + (f" (not measured, for time: steps x batch_real {', '.join(missing)})" if missing else "")
              + ". Picked: " + "; ".join(f"{n}: {picks[n][0][2]} steps, batch_real {picks[n][0][3]} (validation "
                                         f"{picks[n][1]:.2f}%)" for n in names) + ". "
              f"One held-out sample is {100 / validation:.2f} points and each score is one summary and one model, "
              "so differences of a few points between grid points are within seed noise"
              + (f"; the picks of {', '.join(edge)} sit at the grid's largest step count, so longer runs are "
                 "untested" if edge else "") + ".", ""]
    if not final:
        return [*lines, "The final rows at the picked settings are not measured yet.", ""]
    return [*lines, *_privacy_final_lines(final, dataset, "settings picked on the validation split"),
            *_transferred_privacy_lines(rows, grid)]


def _transferred_privacy_lines(rows: list[dict[str, Any]], grid: dict[GridKey, dict[str, Any]]) -> list[str]:
    """Final rows of datasets run at another dataset's validation picks (``privacy-select --picks-from``)."""
    lines: list[str] = []
    transferred = [r for r in rows if r["application"] == "privacy" and r.get("stage") == "final"
                   and any("picked_on" in s for s in r["selection"].values())]
    for dataset in dict.fromkeys(_dataset(r) for r in transferred):
        def current(r: dict[str, Any], dataset: str = dataset) -> bool:
            if _dataset(r) != dataset:
                return False
            for name, s in r["selection"].items():
                source, validation = s["picked_on"]
                pick = _picks(grid, source, validation).get(name, (None,))[0]
                if pick != (source, validation, s["steps"], s["batch_real"], s["clip_norm"]):
                    return False
            return True

        final = list(harness.latest([{**r, "_config": json.dumps(r["config"], sort_keys=True)}
                                     for r in transferred if current(r)], ["dataset", "_config"]).values())
        if not final:
            continue
        first = final[0]
        source = next(iter(first["selection"].values()))["picked_on"][0]
        name = _DATASET_NAMES.get(dataset, dataset)
        opts = {k: v for k, v in first["config"]["method_options"].items()
                if k not in ("batch_real", "clip_norm", "init")}
        lines += [f"### {name}: the {source} picks carried over", "",
                  f"{name} is not tuned: each epsilon runs at the setting picked for it on {source}'s validation "
                  f"split above (no {name} grid, for CPU cost), so no {name} sample, validation or test, chose "
                  f"anything. {first['validation_size']} {name} training samples are still held out (stratified) "
                  f"and their accuracy reported; the protected set is the other {first['protected_size']}."
                  + (f" DM's options beyond the picks: {json.dumps(opts, sort_keys=True)}." if opts else "")
                  + (f" The full-data model is trained on {first['config']['full_per_class']} protected samples "
                     "per class (a CPU stand-in; its attack members are those)."
                     if first["config"].get("full_per_class") else ""), ""]
        lines += _privacy_final_lines(final, dataset, f"settings carried over from {source}'s validation picks")
    return lines


def _privacy_final_lines(final: list[dict[str, Any]], dataset: str, how: str) -> list[str]:
    """The final-row table of one dataset and what it measures."""
    lines: list[str] = []
    cells: dict[str, dict[str, Any]] = {}
    steps_of: dict[str, tuple[int, int]] = {}
    real_init = None
    for r in final:
        opts = r["config"]["method_options"]
        if opts.get("init") == "real":
            real_init = r
            continue
        for name, cell in r["cells"].items():
            cells[name] = cell
            if name.startswith("eps="):
                steps_of[name] = (r["config"]["steps"], opts["batch_real"])
    seeds = final[0]["seeds"]
    clip = final[0]["config"]["method_options"]["clip_norm"]
    lines += [f"Final rows ({dataset}, dp-dm, ipc {final[0]['ipc']}, clip_norm {clip:g}, "
              f"each epsilon at its pick, seeds {', '.join(map(str, seeds))}, models trained "
              f"{final[0]['protocol']['epochs']} epochs (the full data {final[0]['config']['full_epochs']}); "
              "wall per cell: " + "; ".join(f"{', '.join(r['epsilons'])}"
                                            + (" (real init)" if r["config"]["method_options"].get("init") == "real"
                                               else "") + (" + random + full" if r["config"]["baselines"] else "")
                                            + f" {r['wall_s']:.0f} s" for r in final) + "):", ""]
    table_rows = []
    for name in [*sorted((n for n in cells if n.startswith("eps=")), key=_eps_value), "random", "full"]:
        cell = cells.get(name)
        if cell is None:
            continue
        facts = cell.get("privacy") or [{}]
        sigma = facts[0].get("noise_multiplier")
        spent = [f.get("epsilon_spent") for f in facts if f.get("epsilon_spent") is not None]
        steps, batch = steps_of.get(name, ("-", "-"))
        table_rows.append({
            "training set": {"random": "random real subset", "full": "full protected data"}.get(name, f"DP-DM {name}"),
            "steps": steps, "batch_real": batch, "size": cell["train_size"],
            "validation acc. %": _pm(cell["val_accuracy_mean"], cell["val_accuracy_std"]),
            "test acc. %": _pm(cell["accuracy_mean"], cell["accuracy_std"]),
            "attack AUC": f"{cell['auc_mean']:.3f} ± {cell['auc_std']:.3f}",
            "TPR @ 1% FPR": f"{cell['tpr_at_1pct_fpr_mean']:.3f}",
            "noise multiplier": "-" if sigma is None else f"{sigma:.3f}",
            "epsilon spent": f"{max(spent):.3f}" if spent else "-"})
    lines += [*harness.md_table([(h, h) for h in table_rows[0]], table_rows), ""]
    lines += [] if how != "settings picked on the validation split" else [
        "**The published debate, next to these numbers.** Dong, Zhao & Lyu (\"Privacy for free: how does dataset "
        "condensation help privacy?\", ICML 2022) report that models trained on condensed data (DC/DSA/DM) resist "
        "loss-based and likelihood-ratio membership inference about as well as DP-SGD models at better accuracy, "
        "and argue that one sample's influence on the condensed set is bounded. Carlini et al. (\"No free lunch in "
        "'privacy for free'\", 2022) answer that this evaluation gives no statistically significant evidence of a "
        "privacy gain over a naive baseline, that attacks must be judged at low false-positive rates, and that "
        "DP-SGD gives both better accuracy and a proven bound.", ""]
    if {"eps=inf", "random", "full"} <= set(cells):
        c = cells

        def at(name: str) -> str:
            return f"{c[name]['accuracy_mean']:.1f}% accuracy, AUC {c[name]['auc_mean']:.3f}"

        private = sorted((n for n in c if n.startswith("eps=") and n != "eps=inf"), key=_eps_value)
        lines += [
            f"What we measure ({dataset}, {len(seeds)} seeds, {how}): the "
            f"non-private summary (eps=inf, DM from noise) gives {at('eps=inf')}; the random subset of the same size "
            f"{at('random')}; the full protected data {at('full')}"
            + (f"; with privacy, {'; '.join(f'{n} {at(n)}' for n in private)}" if private else "") + ". "
            + ("The summary's AUC near 0.5 looks like \"privacy for free\", but the full-data model, trained on "
               "every member, scores about the same attack AUC (within 0.05) at a higher accuracy: here the "
               "loss-threshold attack barely separates members from test samples whatever the model trained on, so "
               "the comparison gives no evidence of a privacy gain from distillation (Carlini et al.'s point). "
               if abs(c["full"]["auc_mean"] - c["eps=inf"]["auc_mean"]) < 0.05 else
               "The full-data model's attack AUC differs from the summary's by 0.05 or more. ")
            + "The random "
            "subset's higher AUC reflects that its members are only the samples trained on, each seen directly, a "
            "different membership question from the summary's (all protected samples, each reaching the summary "
            "only through class means). TPR at 1% FPR is at most "
            f"{max(v['tpr_at_1pct_fpr_mean'] for v in c.values()):.3f} for every set (chance: 0.010). Only the "
            "accounted epsilon of the DP-DM rows is a guarantee; one attack's AUC near 0.5 proves nothing.", ""]
    if real_init is not None:
        cell = real_init["cells"]["eps=inf"]
        lines += [f"DM started from real images (no privacy; the setting Dong et al. study; the eps=inf pick, "
                  f"{real_init['config']['steps']} steps, batch_real "
                  f"{real_init['config']['method_options']['batch_real']}) gives "
                  f"{_pm(cell['accuracy_mean'], cell['accuracy_std'])}% "
                  f"test accuracy (validation {cell['val_accuracy_mean']:.2f}%), AUC {cell['auc_mean']:.3f} "
                  f"({real_init['wall_s']:.0f} s). Its summary begins as {cell['train_size']} real protected "
                  "images; an attack aimed at those images (rather than at all protected samples, as here) is not "
                  "measured here.", ""]
    if how == "settings picked on the validation split":
        lines += ["Earlier rows whose settings were picked on the test set (no validation split) are superseded; "
                  "they remain in `results.jsonl`.", ""]
    return lines


def _times(ratio: float) -> str:
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def _federated_lines(rows: list[dict[str, Any]]) -> list[str]:
    cells = list(harness.latest([{**r, "_config": json.dumps(r["config"], sort_keys=True)} for r in rows
                                 if r["application"] == "federated"], ["dataset", "_config"]).values())
    if not cells:
        return []
    lines = ["## One-shot federated learning", "",
             "Dirichlet(alpha) non-IID split of the training set over the clients (per class, proportions ~ "
             "Dir(alpha)); one-shot: each client distills its data once (ipc per class it holds, at most what it "
             "holds) and uploads it, the server trains one ConvNet on the union; random: each client uploads a "
             "random subset of the same sizes; FedAvg: all clients every round, local SGD from the global model "
             "(the protocol's optimiser, constant lr), sample-weighted averaging. Bytes are float32: a summary "
             "sample is its pixels + 1 label; a FedAvg round moves the parameters down and up for every client. "
             "Mean ± std over seeds (each seed its own split).", ""]
    table_rows = []
    for r in cells:
        mb = 1e6
        up = r["summary_upload_bytes"]["mean"]
        per_round = r.get("fedavg_bytes_per_round")
        curve = r.get("fedavg_accuracy_mean") or []
        reached = r.get("fedavg_rounds_to_summary_accuracy") or []
        per_class = r.get("train_per_class")
        notes = [f"{per_class}/class of its training set"] if per_class else []
        if r["config"].get("model") or r["config"].get("model_kwargs"):
            notes.append(f"model {r['protocol']['model']} {json.dumps(r['protocol']['model_kwargs'], sort_keys=True)}")
        if r["config"].get("test_per_class"):
            notes.append(f"tested on {r['config']['test_per_class']}/class of its test set")
        dataset = _dataset(r) + (f" ({'; '.join(notes)})" if notes else "")
        base = {"dataset": dataset, "clients": r["clients"], "alpha": r["alpha"]}
        n_train = sum(r["per_seed"][0]["client_sizes"])
        share = f"{r['summary_size']['mean']:.0f} ({100 * r['summary_size']['mean'] / n_train:.0f}% of {n_train})"
        table_rows.append({**base, "scheme": f"one-shot {r['method']} (ipc {r['ipc']}, "
                                             f"{r['config']['steps']} steps; server {r['protocol']['epochs']} "
                                             "epochs)",
                           "note": f"one FedAvg round moves {_times(per_round / up)} these bytes" if per_round else "",
                           "samples / rounds": share,
                           "accuracy %": _pm(r["summary_accuracy"]["mean"], r["summary_accuracy"]["std"]),
                           "MB communicated": f"{up / mb:.3f} (upload)"})
        table_rows.append({**base, "scheme": "one-shot random subsets",
                           "samples / rounds": share,
                           "accuracy %": _pm(r["random_accuracy"]["mean"], r["random_accuracy"]["std"]),
                           "MB communicated": f"{up / mb:.3f} (upload)"})
        for k in sorted({1, min(5, len(curve)), len(curve)}) if curve else []:
            table_rows.append({**base, "scheme": f"FedAvg, {r['fedavg_local_epochs']} local epoch(s), batch "
                                                 f"{r.get('fedavg_local_batch')}",
                               "samples / rounds": f"{k} round(s)",
                               "accuracy %": _pm(curve[k - 1], r["fedavg_accuracy_std"][k - 1]),
                               "MB communicated": f"{k * per_round / mb:.3f}"})
        if curve:
            lines_note = ", ".join("never" if v is None else str(v) for v in reached)
            mb_note = ", ".join("-" if v is None else f"{v * per_round / mb:.1f}" for v in reached)
            table_rows[-1]["note"] = (f"rounds to reach the one-shot accuracy, per seed: {lines_note}"
                                      + (f" ({mb_note} MB)" if any(v is not None for v in reached) else ""))
    cols: list[harness.Column] = [(h, lambda r, h=h: r.get(h, "")) for h in
                                  ("dataset", "clients", "alpha", "scheme", "samples / rounds", "accuracy %",
                                   "MB communicated", "note")]
    lines += [*harness.md_table(cols, table_rows), ""]
    def gaps(r: dict[str, Any]) -> str:
        text = (f"{_dataset(r)} alpha {r['alpha']:g}, ipc {r['ipc']}: one-shot {r['method']} minus random "
                f"{r['summary_accuracy']['mean'] - r['random_accuracy']['mean']:+.2f} points")
        if r.get("fedavg_final_accuracy"):
            text += (f", FedAvg after {len(r['fedavg_accuracy_mean'])} rounds minus one-shot {r['method']} "
                     f"{r['fedavg_final_accuracy']['mean'] - r['summary_accuracy']['mean']:+.2f} points")
        return text

    def verdict(r: dict[str, Any]) -> str:
        gap = r["summary_accuracy"]["mean"] - r["random_accuracy"]["mean"]
        noise = max(r["summary_accuracy"]["std"], r["random_accuracy"]["std"])
        return "above" if gap > noise else "below" if gap < -noise else "within"

    where: dict[str, list[str]] = {}
    for r in cells:
        where.setdefault(verdict(r), []).append(f"{_dataset(r)} alpha {r['alpha']:g} ipc {r['ipc']}")
    found = [f"the distilled union is {text} in {', '.join(where[kind])}" for kind, text in (
        ("above", "better than random subsets of the same bytes by more than one std"),
        ("within", "not measurably different from random subsets of the same bytes (within one std)"),
        ("below", "worse than random subsets of the same bytes by more than one std")) if kind in where]
    lines += ["Measured: " + "; ".join(gaps(r) for r in cells) + ". Against random: " + "; ".join(found) + ". Both "
              "upload once per client, while one FedAvg round already moves the multiple of those bytes given in the "
              "note column, and FedAvg reaches the one-shot accuracy only after the rounds given in its last row, if "
              "at all within its rounds.", ""]
    lines += ["Published (abstracts only, other data and models): FedD3 (Song et al.) reports one-shot distilled "
              "federated learning on non-IID CIFAR-10 (AlexNet, 10 clients) >71% more accurate than other one-shot "
              "methods at similar communication, or 98% less communication at equal accuracy; DOSFL (Zhou et al.) "
              "reports up to three orders of magnitude less communication than FedAvg at 93-99% of centralised "
              "accuracy.", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("continual")
    c.add_argument("--methods", nargs="+", default=["dm", "random", "herding"])
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--tasks", type=int, default=5)
    c.add_argument("--memory", type=int, default=10)
    c.add_argument("--epochs", type=int, default=300)
    c.add_argument("--steps", type=int, default=200, help="outer steps per task of each distillation method")
    c.add_argument("--dataset", default="digits", help="digits, fashion-mnist, mnist, ... (distill apply --dataset)")
    c.add_argument("--root", help="folder holding the dataset files (distill apply --root)")
    c.add_argument("--model", help="architecture of each task's model (default: the modality's)")
    c.add_argument("--select-every", type=int, default=0, metavar="N",
                   help="distillation methods: keep each task's best step of every N on a held-out validation split")
    c.add_argument("--validation-per-class", type=int, default=20)
    c.add_argument("--select-ties", choices=["later", "earlier"], default="later")
    c.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an option of the distillation methods (e.g. batch_real=64)")
    n = sub.add_parser("nas")
    n.add_argument("--variants", type=int, default=50)
    n.add_argument("--ipc", type=int, default=10)
    n.add_argument("--steps", type=int, default=200)
    n.add_argument("--epochs", type=int, default=100)
    n.add_argument("--full-epochs", type=int, default=20)
    n.add_argument("--dataset", default="digits")
    n.add_argument("--root", help="folder holding the dataset files (distill apply --root)")
    n.add_argument("--full-per-class", type=int, help="the full-data stand-in: this many training samples per class")
    n.add_argument("--set", action="append", metavar="KEY=VALUE", help="one DM option (repeatable)")
    n.add_argument("--test-per-class", type=int, help="test each variant on this many test samples per class")
    p = sub.add_parser("privacy")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epsilons", nargs="+", default=["1", "4", "10", "inf"])
    p.add_argument("--ipc", type=int, default=10)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-real", type=int, default=32)
    p.add_argument("--clip-norm", type=float, default=1.0)
    p.add_argument("--full-per-class", type=int)
    p.add_argument("--full-epochs", type=int, default=100)
    p.add_argument("--init-real", action="store_true", help="also DM from real images (epsilon inf)")
    p.add_argument("--only-init-real", action="store_true", help="only DM from real images (epsilon inf)")
    p.add_argument("--no-baselines", action="store_true", help="only the summaries (random and full measured before)")
    ps = sub.add_parser("privacy-select", help="the privacy audit with its settings picked on a validation split")
    ps.add_argument("--stages", nargs="+", choices=["select", "final"], default=["select", "final"])
    ps.add_argument("--dataset", default="digits")
    ps.add_argument("--epsilons", nargs="+", default=["1", "4", "10", "inf"])
    ps.add_argument("--ipc", type=int, default=10)
    ps.add_argument("--epochs", type=int, default=300)
    ps.add_argument("--validation", type=int, default=300, help="held-out training samples (stratified)")
    ps.add_argument("--validation-seed", type=int, default=0)
    ps.add_argument("--grid-steps", type=int, nargs="+", default=[200, 500, 1000])
    ps.add_argument("--grid-batch-real", type=int, nargs="+", default=[32, 64])
    ps.add_argument("--clip-norm", type=float, default=1.0)
    ps.add_argument("--select-seeds", type=int, default=1)
    ps.add_argument("--select-first-seed", type=int, default=100, help="grid seeds, disjoint from the final 0..N-1")
    ps.add_argument("--seeds", type=int, default=3)
    ps.add_argument("--full-epochs", type=int, default=100)
    ps.add_argument("--init-real", action="store_true", help="also DM from real images at the eps=inf pick")
    ps.add_argument("--no-baselines", action="store_true", help="final stage: only the summaries (the random "
                    "subset and the full data measured by another run)")
    ps.add_argument("--picks-from", metavar="DATASET",
                    help="final stage: run at the picks of DATASET's grid (carried over, no grid for --dataset)")
    ps.add_argument("--picks-validation", type=int, default=300, help="the validation size of --picks-from's grid")
    ps.add_argument("--root", help="folder holding the dataset files (distill apply --root)")
    ps.add_argument("--full-per-class", type=int, help="the full-data model on this many samples per class")
    ps.add_argument("--set", action="append", metavar="KEY=VALUE", help="one more DP-DM option (repeatable)")
    f = sub.add_parser("federated")
    f.add_argument("--dataset", default="digits")
    f.add_argument("--method", default="dm")
    f.add_argument("--clients", type=int, default=10)
    f.add_argument("--alpha", type=float, default=0.5)
    f.add_argument("--ipc", type=int, default=10)
    f.add_argument("--steps", type=int, default=100)
    f.add_argument("--batch-real", type=int, default=64)
    f.add_argument("--rounds", type=int, default=50)
    f.add_argument("--local-epochs", type=int, default=1)
    f.add_argument("--local-batch", type=int, default=32)
    f.add_argument("--seeds", type=int, default=3)
    f.add_argument("--epochs", type=int, default=300)
    f.add_argument("--root", help="folder holding the dataset files (distill apply --root)")
    f.add_argument("--train-per-class", type=int, help="split this many training samples per class (a CPU stand-in)")
    f.add_argument("--test-per-class", type=int, help="test on this many test samples per class (a CPU stand-in)")
    f.add_argument("--model", help="the server's and FedAvg's architecture (default: the modality's)")
    f.add_argument("--model-kwargs", metavar="JSON", help='its options, e.g. \'{"width": 32}\'')
    f.add_argument("--set", action="append", metavar="KEY=VALUE", help="one option of the method (repeatable)")
    sub.add_parser("table")
    ns = parser.parse_args()
    {"continual": continual, "nas": nas, "privacy": privacy, "privacy-select": privacy_select, "federated": federated,
     "table": table}[ns.command](ns)


if __name__ == "__main__":
    main()
