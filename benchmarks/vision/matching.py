"""DCC and CAFE against DC and herding on Fashion-MNIST IPC 1, in the CPU profile of ``params.py``'s DC row, each
started from random real images and (cells ``dcc-herding`` / ``cafe-herding``, rows ``dcc (init herding)`` / ``cafe
(init herding)``) from the herding coreset's images.

Every cell runs ``distill_core.runner.distill`` (the CLI's path) in a fresh process and appends one row to
``matching.jsonl``: method, IPC, seed, accuracy, distillation wall / CPU seconds, options and protocol. ``table``
writes ``matching.md``, with DC dense and herding read from ``params.jsonl`` (the committed rows of ``params.py``,
same dataset, budget, seeds, network and evaluation), so each method is compared with them.

CPU profile (2-core machine, one thread per cell): a width-32 ConvNet for the method's network and for evaluation
(300 epochs, 3 models, SGD 0.01 with momentum, no augmentation: the default protocol), 200 outer steps, and as in
``params.py``'s DC row one image update and one network epoch per outer step (``outer_loop`` 1, ``inner_loop`` 1),
for both methods:

- DCC: the reference warms up for 250 of its 1000 outer steps; here 50 of 200 (the same quarter). With one update
  per step ``inner_warmup`` (10) never ends the warm-up early.
- CAFE: one image update and one network epoch per outer step, so the λ watchers (10 steps) never fire: the rows
  measure CAFE's loss, not its dynamic loop lengths. Initialised from real images like the DC row (CAFE's reference
  starts from noise); the image lr halves at 60/80/90% of the steps (the reference's 1200/1600/1800 of 2000).
- ``cafe-loops``: CAFE's bi-level loop inside each outer step: 10 image updates on the step's network, which trains
  10 epochs on the summary between them (the reference's watchers look back 10 values, so each of its steps has at
  least 10 updates and 10 epochs between them); 10x the image updates of ``cafe``.
- ``cafe-dsa``: CAFE+DSA, the paper's stronger variant (CIFAR-10 IPC 1: 31.6 against 30.3): ``cafe``'s options
  with DSA's Siamese augmentation (the dataset's default strategy) on the real batch and the synthetic images of each
  class and in the network's epochs on the summary.
- ``dc-herding`` / ``dsa-herding``: DC and DSA with params.py's DC options (the ``dc`` row there is DC from random
  real images), started from herding's images; DSA's Siamese augmentation is in the matching only, evaluation has
  none (as for every row here).
- ``dcc-herding`` / ``cafe-herding``: the same options with ``init="herding"``: the distillation starts from the
  images of the herding row of the same seed (identical images: the coreset is chosen with the run's seed) instead of
  random real ones, so ``vs herding, same seeds`` is what the distillation adds to its own starting point.

Nothing is selected on the test set: every row is the final summary.

Usage::

    python benchmarks/vision/matching.py run --cells dcc:1 cafe:1 --seeds 0 1 2
    python benchmarks/vision/matching.py run --cells cafe-herding:1 dcc-herding:1 --seeds 0 1 2
    python benchmarks/vision/matching.py run --cells cafe-herding:10 dcc-herding:10 --seeds 0  # herding: params.py
    python benchmarks/vision/matching.py run --cells dc-herding:1 dsa-herding:1 --seeds 0 1 2
    python benchmarks/vision/matching.py run --cells cafe-dsa-herding:1 --seeds 0 1 2
    python benchmarks/vision/matching.py table
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import harness  # noqa: E402

RESULTS = HERE / "matching.jsonl"
#: the profile's outer steps (harness.cell_commands' default); rows at other steps are budget checks
DEFAULT_STEPS = 200
TABLE = HERE / "matching.md"
BASELINES = HERE / "params.jsonl"  # DC dense and herding, same profile (read only)
WIDTH = 32

#: each cell's CPU-profile options; a cell ``METHOD-VARIANT`` runs the registered method ``METHOD``
METHODS: dict[str, dict[str, Any]] = {
    "dcc": {"model_kwargs": {"width": WIDTH}, "outer_loop": 1, "inner_loop": 1, "outer_warmup": 50},
    "cafe": {"model_kwargs": {"width": WIDTH}, "outer_loop": 1, "inner_loop": 1, "init": "real"},
    # CAFE's bi-level loop within a step: 10 image updates on one network, trained 10 epochs on the summary between
    # them (the reference's watchers need 10 values before they can fire, so every reference step has at least this)
    "cafe-loops": {"model_kwargs": {"width": WIDTH}, "outer_loop": 10, "inner_loop": 10, "init": "real"},
    # CAFE+DSA (the paper's stronger variant): the same one-update loop with DSA's Siamese augmentation on both sides
    "cafe-dsa": {"model_kwargs": {"width": WIDTH}, "outer_loop": 1, "inner_loop": 1, "init": "real",
                 "dsa_strategy": "auto"},
    # DC and DSA in params.py's DC profile (their reference loops at IPC 1), for their ``-herding`` variants
    "dc": {"model_kwargs": {"width": WIDTH}, "outer_loop": 1, "inner_loop": 1},
    "dsa": {"model_kwargs": {"width": WIDTH}, "outer_loop": 1, "inner_loop": 1},
}
#: the same options, started from the herding coreset's images (``init="herding"``: with the same seed, exactly the
#: images of ``params.jsonl``'s herding row of that seed)
METHODS |= {f"{name}-herding": {**options, "init": "herding"} for name, options in list(METHODS.items())}
#: the table's name of each variant cell
LABELS = {"dcc-herding": "dcc (init herding)", "cafe-herding": "cafe (init herding)",
          "dc-herding": "dc (init herding)", "dsa-herding": "dsa (init herding)",
          "cafe-loops": "cafe (10 updates x 10 epochs)", "cafe-loops-herding": "cafe (10 x 10, init herding)",
          "cafe-dsa": "cafe+dsa", "cafe-dsa-herding": "cafe+dsa (init herding)"}


def _library_method(cell: str) -> str:
    """The registered method a cell runs (``dcc-herding`` -> ``dcc``)."""
    return cell.split("-")[0]


def _cell(args: argparse.Namespace) -> None:
    from distill_core.data import Budget
    from distill_core.runner import distill

    harness.set_threads(1)
    overrides: dict[str, Any] = {**METHODS[args.method], "steps": args.steps}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcome = distill(_library_method(args.method), dataset=args.dataset, budget=Budget(ipc=args.ipc), seed=args.seed,
                      overrides=overrides, root=args.root, evaluate=True, progress=False,
                      protocol_overrides={"model_kwargs": {"width": WIDTH}, "epochs": args.eval_epochs,
                                          "n_models": args.models})
    ev = outcome.evaluation
    assert ev is not None
    harness.emit({"dataset": args.dataset, "method": _library_method(args.method), "cell": args.method,
                  "ipc": args.ipc, "seed": args.seed,
                  "steps": args.steps, "accuracy_mean": round(ev.mean, 2), "accuracy_std": round(ev.std, 2),
                  "distill_wall_s": round(outcome.timings.get("distill_s", 0.0), 1),
                  "cell_cpu_s": round(time.process_time() - cpu0, 1),
                  "cell_wall_s": round(time.perf_counter() - wall0, 1),
                  "options": overrides, "protocol": ev.protocol.to_dict(), **harness.cell_context()})


def _run(args: argparse.Namespace) -> None:
    for cell in args.cells:
        method, ipc = cell.split(":")
        for seed in args.seeds:
            row = harness.run_cell(__file__, "cell", "--method", method, "--ipc", ipc, "--seed", seed,
                                   "--steps", args.steps, "--dataset", args.dataset, "--eval-epochs", args.eval_epochs,
                                   "--models", args.models, *(["--root", args.root] if args.root else []),
                                   check=False)
            if row:
                harness.append_jsonl(RESULTS, row)
                print(json.dumps({k: row[k] for k in ("cell", "ipc", "seed", "accuracy_mean", "distill_wall_s")}),
                      flush=True)


def _baselines() -> list[dict[str, Any]]:
    """DC and DM dense and herding rows of ``params.jsonl`` in this profile, renamed to this file's columns."""
    rows = []
    for r in harness.read_jsonl(BASELINES):
        if r["param"] == "dense" and (r["objective"] == "herding"
                                      or (r["objective"] in ("dc", "dm") and r["steps"] == 200)):
            rows.append({**r, "method": r["objective"], "source": "params.jsonl"})
    return rows


def _table(_: argparse.Namespace) -> None:
    ours = harness.read_jsonl(RESULTS)
    cells = {(r["dataset"], r["ipc"]) for r in ours}
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in [*(b for b in _baselines() if (b["dataset"], b["ipc"]) in cells), *ours]:
        name = LABELS.get(r.get("cell", r["method"]), r["method"])  # rows before the variants have no "cell"
        groups.setdefault((r["dataset"], r["ipc"], name, r["steps"]), []).append(r)
    table = []
    for (dataset, ipc, method, steps), rs in sorted(groups.items()):
        means = [r["accuracy_mean"] for r in rs]
        table.append({"dataset": dataset, "ipc": ipc, "method": method, "steps": steps, "seeds": len(rs),
                      "mean": statistics.mean(means), "std": statistics.stdev(means) if len(means) > 1 else 0.0,
                      "seed_list": ", ".join(f"{r['seed']}: {r['accuracy_mean']:.2f}" for r in rs),
                      "wall": f"{statistics.mean(r['distill_wall_s'] for r in rs):.0f}",
                      "cpu": f"{statistics.mean(r['cell_cpu_s'] for r in rs):.0f}",
                      "source": rs[0].get("source", "matching.jsonl")})
    ref = {(r["dataset"], r["ipc"], r["method"]): r["mean"] for r in table}
    herding_by_seed = {(k[0], k[1], r["seed"]): r["accuracy_mean"] for k, rs in groups.items() if k[2] == "herding"
                       for r in rs}
    for row in table:
        row["acc"] = f"{row['mean']:.2f} ± {row['std']:.2f}"
        for name in ("herding", "dc"):
            base = ref.get((row["dataset"], row["ipc"], name))
            row[f"vs_{name}"] = "-" if base is None or row["method"] == name else f"{row['mean'] - base:+.2f}"
        herding = ref.get((row["dataset"], row["ipc"], "herding"))
        pairs = [r["accuracy_mean"] - herding_by_seed[(r["dataset"], r["ipc"], r["seed"])]
                 for r in groups[(row["dataset"], row["ipc"], row["method"], row["steps"])]
                 if (r["dataset"], r["ipc"], r["seed"]) in herding_by_seed]
        row["paired"] = "-" if row["method"] == "herding" or not pairs else f"{statistics.mean(pairs):+.2f}"
        wins = sum(p > 0 for p in pairs)
        row["beats"] = ("-" if herding is None or row["method"] == "herding"
                        else "no" if row["mean"] <= herding
                        else f"yes ({wins}/{len(pairs)} seeds)" if pairs and wins == len(pairs)
                        else f"level ({wins}/{len(pairs)} seeds)")
    lines = ["# DCC and CAFE vs DC, DSA, DM and herding (CPU profile)", "",
             "Fashion-MNIST, IPC 1 (and IPC 10 where rows exist; herding at IPC 10 from `params.jsonl` too), "
             "width-32 ConvNet for distillation and evaluation (300 epochs x 3 models, no "
             "augmentation), one image update and one network epoch per outer step (`cafe (10 updates x 10 "
             "epochs)`: ten image updates per step on one network, trained ten epochs on the summary between them, "
             "as every step of CAFE's reference has at least), final summary, seeds 0-2 (IPC "
             "10: only the seeds in `per seed`, so read `vs herding, same seeds` there). `dcc` "
             "and `cafe` start from random real images; `dcc (init herding)` and `cafe (init herding)` use the same "
             "options with `init=herding`, i.e. start from exactly the images of the herding row of the same seed, "
             "so their `vs herding, same seeds` is what distillation adds to its starting point (`dc (init "
             "herding)` and `dsa (init herding)` likewise, with DC's options). DC, DM "
             "and herding are the committed rows of `params.jsonl` (same profile); herding is the best coreset at "
             "IPC 1: k-center (`distill_core.coreset`) starts from the same image, the sample nearest the class "
             "mean in the same features, so its IPC-1 rows equal herding's. `beats herding`: the mean over "
             "seeds is above herding's and every seed beats herding's row of the same seed (`level`: the mean is "
             "above but not every seed); `vs herding, same seeds`: the mean of the per-seed differences over the "
             "row's seeds (fair while a row has fewer seeds). Wall times depend on the machine's load (the cells "
             "shared 2 cores with other jobs); `cell CPU s` (distillation + evaluation) compares cost better. "
             "Options per method: `matching.py` (`METHODS`) and each row's `options`.",
             ""]
    lines += harness.md_table([("dataset", "dataset"), ("IPC", "ipc"), ("method", "method"), ("steps", "steps"),
                               ("seeds", "seeds"), ("accuracy % (mean ± std over seeds)", "acc"),
                               ("vs herding", "vs_herding"), ("vs herding, same seeds", "paired"),
                               ("beats herding", "beats"), ("vs DC", "vs_dc"),
                               ("per seed", "seed_list"), ("distill wall s", "wall"), ("cell CPU s", "cpu"),
                               ("rows from", "source")], table)
    lines += ["", *_bar_lines(table), *_cafe_lines(groups, herding_by_seed)]
    harness.write_markdown(TABLE, lines)
    print("\n".join(lines))


def _bar_lines(table: list[dict[str, Any]], bar: float = 2.0) -> list[str]:
    """Which rows clear ``bar`` points over the best coreset (herding; k-center equals it at IPC 1), per dataset and
    IPC, and which do not."""
    herding = {(r["dataset"], r["ipc"]): r["mean"] for r in table if r["method"] == "herding"}
    lines = []
    for (dataset, ipc), base in sorted(herding.items()):
        gaps = [(r["method"] + (f" ({r['steps']} steps)" if r["steps"] not in (0, DEFAULT_STEPS) else ""),
                 r["mean"] - base) for r in table
                if (r["dataset"], r["ipc"]) == (dataset, ipc) and r["method"] != "herding"]
        if not gaps:
            continue
        above = ", ".join(f"{m} {g:+.2f}" for m, g in gaps if g >= bar) or "none"
        below = ", ".join(f"{m} {g:+.2f}" for m, g in gaps if g < bar) or "none"
        which = "the best coreset: k-center picks the same images" if ipc == 1 else "k-center not run in this profile"
        lines += [f"{dataset} IPC {ipc}, {bar:g} points or more over herding ({base:.2f}; {which}): {above}; below "
                  f"that: {below}.", ""]
    return lines


def _cafe_lines(groups: dict[tuple[Any, ...], list[dict[str, Any]]],
                herding_by_seed: dict[tuple[str, int, int], float]) -> list[str]:
    """CAFE at IPC 1 against herding in every variant, and the step-budget check (a variant run at more steps than
    the profile's, on the seeds it has), so the verdict on CAFE at IPC 1 is stated with its evidence."""
    variants = {k: rs for k, rs in groups.items() if k[1] == 1 and k[2].startswith("cafe")}
    if not variants:
        return []
    parts = []
    for (dataset, ipc, name, steps), rs in sorted(variants.items()):
        diffs = [r["accuracy_mean"] - herding_by_seed[(dataset, ipc, r["seed"])] for r in rs
                 if (dataset, ipc, r["seed"]) in herding_by_seed]
        if diffs:
            parts.append(f"{name}, {steps} steps, {len(diffs)} seed{'s' if len(diffs) > 1 else ''}: "
                         f"{statistics.mean(diffs):+.2f}")
    longer = [(k, rs) for k, rs in variants.items() if k[3] > DEFAULT_STEPS]
    checks = []
    for (dataset, ipc, name, steps), rs in longer:
        short = {r["seed"]: r["accuracy_mean"] for r in groups.get((dataset, ipc, name, DEFAULT_STEPS), [])}
        for r in rs:
            if r["seed"] in short:
                checks.append(f"{name} at {steps} steps, seed {r['seed']}: {r['accuracy_mean']:.2f} against "
                              f"{short[r['seed']]:.2f} at {DEFAULT_STEPS} steps and herding's "
                              f"{herding_by_seed.get((dataset, ipc, r['seed']), float('nan')):.2f}")
    lines = ["**CAFE at IPC 1 does not beat herding in this CPU profile** (same-seed differences to herding: "
             + "; ".join(parts) + ")."]
    if checks:
        lines[0] += (" More image updates do not close the gap: " + "; ".join(checks) + ". The reference runs "
                     "2,000 iterations, each with at least 10 image updates on one network and at least 10 network "
                     "epochs on the summary between them (its watchers look back 10 values), i.e. 20,000 or more "
                     "image updates at width 128, against 200-2,000 here at width 32; CAFE at IPC 10 does beat "
                     "herding here (the IPC 10 rows). Not tested: the reference's width-128 ConvNet and its full "
                     "bi-level budget, a GPU job.")
    return [*lines, ""]


def _cell_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--ipc", type=int, required=True)


def main() -> None:
    args = harness.cell_commands(__doc__, cells_help="METHOD:IPC", cell_options=_cell_options)
    {"run": _run, "cell": _cell, "table": _table}[args.command](args)


if __name__ == "__main__":
    main()
