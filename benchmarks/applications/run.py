"""Benchmarks of distill-core's applications (``distill apply``) on scikit-learn's 8x8 digits, CPU.

- ``continual``: class-incremental digits, 5 tasks of 2 classes in a seeded class order per seed, DM's protocol
  (``--training memory``: at each task a fresh ConvNet is trained from scratch on the memory of all tasks so far),
  memories of ``--memory`` images per class built per task from that task's classes only by DM, random and herding;
  seen-class test accuracy after each task and average forgetting, mean +- std over ``--seeds`` seeds (class orders).
- ``nas``: the architecture-search proxy: ``--variants`` ConvNets drawn from the vision modality's space (depth,
  width, norm, activation, pooling), each trained on a DM summary, on a random real subset of the same size and on
  the full digits training set; Spearman rank correlation with the full-data accuracies (all, top 5 / 10 / 20) and
  the training time saved.
- ``table``: rewrite ``results.md`` from ``results.jsonl``.

Each cell is one ``distill apply ... --json`` in a fresh process (``harness.run_cell``); its JSON report, the
command and the machine context go to ``results.jsonl`` (newest row per key kept in the table). Run one at a time::

    python benchmarks/applications/run.py continual --methods dm random herding --seeds 3
    python benchmarks/applications/run.py nas --variants 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.jsonl"
TABLE = HERE / "results.md"


def _cell(args: list[str]) -> dict[str, Any]:
    row = harness.run_cell("-m", "distill_core.cli", "apply", *args, "--json", env={"OMP_NUM_THREADS": "1"})
    assert row is not None
    row["command"] = "distill apply " + " ".join(args) + " --json"
    row.update(harness.machine_context())
    harness.append_jsonl(RESULTS, row)
    return row


def continual(ns: argparse.Namespace) -> None:
    for method in ns.methods:
        args = ["continual", method, "--dataset", "digits", "--tasks", str(ns.tasks), "--memory", str(ns.memory),
                "--seeds", str(ns.seeds), "--epochs", str(ns.epochs)]
        if method == "dm":
            args += ["--steps", str(ns.steps)]
        row = _cell(args)
        print(method, row["accuracy_per_task_mean"], row["forgetting_mean"], flush=True)
    table()


def nas(ns: argparse.Namespace) -> None:
    row = _cell(["nas", "dm", "--dataset", "digits", "--ipc", str(ns.ipc), "--steps", str(ns.steps),
                 "--variants", str(ns.variants), "--epochs", str(ns.epochs), "--full-epochs", str(ns.full_epochs)])
    print(row["spearman_summary"], row["spearman_random"], row["time_saved_summary"], flush=True)
    table()


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def _rho(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(_: argparse.Namespace | None = None) -> None:
    rows = harness.read_jsonl(RESULTS)
    cont = list(harness.latest([r for r in rows if r["application"] == "continual"],
                               ["method", "training", "tasks", "memory_per_class"]).values())
    nas_rows = list(harness.latest([r for r in rows if r["application"] == "nas"], ["method", "ipc"]).values())
    lines = ["# Applications on digits (CPU)", "",
             "Written by `benchmarks/applications/run.py` from `results.jsonl`; the protocols are stated in its "
             "docstring and in packages/distill-core/README.md (Applications). Each row's command is in "
             "`results.jsonl`.", ""]
    if cont:
        tasks = max(len(r["accuracy_per_task_mean"]) for r in cont)
        columns: list[harness.Column] = [("memory", "method"), ("training", "training"),
                                         ("per class", "memory_per_class"), ("seeds", lambda r: len(r["seeds"]))]
        columns += [(f"after task {t + 1}", lambda r, t=t: _pm(r["accuracy_per_task_mean"][t],
                                                                r["accuracy_per_task_std"][t])) for t in range(tasks)]
        columns += [("forgetting", lambda r: _pm(r["forgetting_mean"], r["forgetting_std"])),
                    ("epochs per task", lambda r: r["protocol"]["epochs"]),
                    ("method steps", lambda r: r["config"]["steps"] if r["config"]["steps"] is not None else "-"),
                    ("wall s", "wall_s")]
        lines += ["## Class-incremental continual learning", "",
                  "Seen-class test accuracy (%) after each task, mean ± std over seeds (each seed its own class "
                  "order); forgetting in points (Chaudhry et al. 2018).", ""]
        lines += [*harness.md_table(columns, cont), ""]
    if nas_rows:
        lines += ["## Architecture-search proxy", "",
                  "Spearman rank correlation of the proxy's test accuracies with the full-data ones over all "
                  "variants and over the full-data top 5 / 10 / 20; training times in seconds; time saved = 1 - "
                  "(proxy training + distillation) / full-data training.", ""]
        for r in nas_rows:
            for proxy, key, extra in (("DM summary", "summary", r["distill_s"]), ("random subset", "random", 0.0)):
                rho = r[f"spearman_{key}"]
                r.setdefault("_lines", []).append({
                    "proxy": proxy, "n": r["n_variants"], "size": f"{r['ipc']}/class",
                    "all": _rho(rho["all"]), "top5": _rho(rho["top5"]), "top10": _rho(rho["top10"]),
                    "top20": _rho(rho["top20"]), "train_s": r["train_s"][key], "distill_s": extra,
                    "full_s": r["train_s"]["full"], "saved": r[f"time_saved_{key}"],
                    "pick": r[f"full_accuracy_of_{key}_pick"], "best": r["best_full_accuracy"]})
        lines += [f"Settings ({r['method']} ipc {r['ipc']}): proxies trained {r['protocol']['epochs']} epochs, "
                  f"the full data ({r['full_size']} images) {r['config']['full_epochs']} epochs, {r['method']} "
                  f"{r['config']['steps']} steps; accuracies of the full-data variants range "
                  f"{min(r['full_accuracies']):.1f}-{r['best_full_accuracy']:.1f}%." for r in nas_rows] + [""]
        cols: list[harness.Column] = [(h, h) for h in ("proxy", "n", "size", "all", "top5", "top10", "top20",
                                                        "train_s", "distill_s", "full_s", "saved")]
        cols += [("full acc. of proxy's pick", "pick"), ("best full acc.", "best")]
        lines += [*harness.md_table(cols, [line for r in nas_rows for line in r["_lines"]]), ""]
    harness.write_markdown(TABLE, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("continual")
    c.add_argument("--methods", nargs="+", default=["dm", "random", "herding"])
    c.add_argument("--seeds", type=int, default=3)
    c.add_argument("--tasks", type=int, default=5)
    c.add_argument("--memory", type=int, default=10)
    c.add_argument("--epochs", type=int, default=300)
    c.add_argument("--steps", type=int, default=200, help="DM outer steps per task")
    n = sub.add_parser("nas")
    n.add_argument("--variants", type=int, default=50)
    n.add_argument("--ipc", type=int, default=10)
    n.add_argument("--steps", type=int, default=200)
    n.add_argument("--epochs", type=int, default=100)
    n.add_argument("--full-epochs", type=int, default=20)
    sub.add_parser("table")
    ns = parser.parse_args()
    {"continual": continual, "nas": nas, "table": table}[ns.command](ns)


if __name__ == "__main__":
    main()
