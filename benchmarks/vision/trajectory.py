"""Trajectory-matching benchmarks (MTT, TESLA, DATM): peak memory against unrolled steps, and accuracy cells.

- ``memory``: one outer step of trajectory matching on Fashion-MNIST-shaped random data and a random expert
  segment (timing and memory only, like the plain MTT yardstick), each (gradient, N) in a fresh process:
  ``unrolled`` (MTT) grows with N, ``exact`` (TESLA's recomputation) should stay flat. ``--reference PATH`` also
  runs the plain MTT yardstick script at the same IPC and N in the same run.
- ``experts``: build (or extend) the expert store of the CPU profile and record its cost (wall, CPU, disk).
- ``accuracy``: method x IPC x seed cells through ``distill_core.runner.distill`` (the CLI's path), each in a fresh
  process, appended to ``trajectory.jsonl``; ``table`` writes ``trajectory.md``.

CPU profile (this 2-core machine; the papers' width-128 ConvNet costs ~375 s per expert epoch here, so the experts
and the student are width-32 ConvNets, 5 experts, experts' epochs as the start window needs; distillation with
fewer student steps than the papers). Every row's settings are stored with it.

Usage::

    python benchmarks/vision/trajectory.py memory --steps 10 20 40 80 [--reference PATH/mtt_reference.py]
    python benchmarks/vision/trajectory.py experts --epochs 12
    python benchmarks/vision/trajectory.py accuracy --cells mtt:10 tesla:10 datm:10 --seeds 0 1 2
    python benchmarks/vision/trajectory.py table
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

RESULTS = HERE / "trajectory.jsonl"
MEMORY = HERE / "trajectory_memory.json"
EXPERTS = HERE / "trajectory_experts.json"
TABLE = HERE / "trajectory.md"
WIDTH = 32
N_EXPERTS = 5

#: CPU-profile options per (method, ipc); the window and steps fit the 12-epoch expert store
CPU_PROFILE: dict[tuple[str, int], dict[str, Any]] = {
    ("mtt", 1): {"syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 2, "lr_summary": 100.0, "lr_lr": 1e-7},
    ("mtt", 10): {"syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 10, "lr_summary": 100.0, "lr_lr": 1e-5},
    ("tesla", 1): {"syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 2, "lr_summary": 100.0, "lr_lr": 1e-7},
    ("tesla", 10): {"syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 10, "lr_summary": 100.0,
                    "lr_lr": 1e-5},
    ("datm", 1): {"syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 3, "initial_max_start_epoch": 2,
                  "expansion_steps": 100, "lr_summary": 100.0, "lr_lr": 1e-7, "lr_labels": 5.0, "batch_syn": 10,
                  "threshold": 1.1},
    ("datm", 10): {"syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 10, "initial_max_start_epoch": 5,
                   "expansion_steps": 100, "lr_summary": 100.0, "lr_lr": 1e-5, "lr_labels": 2.0, "batch_syn": 100},
}
COMMON = {"model_kwargs": {"width": WIDTH}, "n_experts": N_EXPERTS}


def _memory_cell(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from distill_core.objectives import plan_steps, trajectory_backward, trajectory_loss
    from distill_vision.models import build_model

    torch.manual_seed(0)
    harness.set_threads(2)
    net = build_model("convnet", sample_shape=(1, 28, 28), num_classes=10, width=args.width)
    start = {k: v.detach().clone() for k, v in net.named_parameters()}
    target = {k: v + 0.01 * torch.randn_like(v) for k, v in start.items()}
    x = torch.randn(10 * args.ipc, 1, 28, 28, requires_grad=True)
    labels = torch.arange(10).repeat_interleave(args.ipc)
    raw_lr = torch.tensor(-4.6, requires_grad=True)
    times = []
    for it in range(args.iters + 1):
        t0 = time.perf_counter()
        plan = plan_steps(len(x), args.n, min(10 * args.ipc, 100), torch.Generator().manual_seed(it))
        lr = F.softplus(raw_lr)
        targets = F.one_hot(labels, 10).float()
        if args.gradient == "unrolled":
            trajectory_loss(net, start, target, x, targets, lr=lr, plan=plan).backward()
        else:
            trajectory_backward(net, start, target, x, targets, lr=lr, plan=plan, mode=args.gradient)
        x.grad = None
        if it >= 1:
            times.append(time.perf_counter() - t0)
    harness.emit({"gradient": args.gradient, "n": args.n, "ipc": args.ipc, "width": args.width,
                  "s_per_step": round(statistics.median(times), 3), **harness.cell_context()})


def _memory(args: argparse.Namespace) -> None:
    rows = []
    for n in args.steps:
        for gradient in args.gradients:
            row = harness.run_cell(__file__, "memory-cell", "--gradient", gradient, "--n", n, "--ipc", args.ipc,
                                   "--width", args.width, "--iters", args.iters, check=False)
            if row:
                rows.append(row)
                print(json.dumps(row), flush=True)
        if args.reference:
            proc = harness.run_cell("-c", "import subprocess,sys,json; o=subprocess.run([sys.executable]+sys.argv[1:],"
                                    "capture_output=True,text=True,check=True).stdout.split(); print(json.dumps("
                                    "{'s_per_step': float(o[0]), 'peak_rss_mb': float(o[1])}))",
                                    args.reference, args.ipc, n, args.iters, check=False)
            if proc:
                row = {"gradient": "reference (width 128)", "n": n, "ipc": args.ipc, "width": 128, **proc}
                rows.append(row)
                print(json.dumps(row), flush=True)
    harness.save_json(MEMORY, {"machine": harness.machine(), "rows": rows})


def _experts(args: argparse.Namespace) -> None:
    from distill_core.runner import build_expert_store

    harness.set_threads(2)
    t0 = time.process_time()
    report = build_expert_store("mtt", dataset=args.dataset, n=N_EXPERTS, epochs=args.epochs, overrides=dict(COMMON),
                                root=args.root, workers=args.workers, progress=False)
    report["cpu_s_main"] = round(time.process_time() - t0, 1)
    report["workers"] = args.workers
    store = harness.load_json(EXPERTS, {})
    builds = [*store.get(args.dataset, {}).get("builds", []),
              {"epochs": args.epochs, "wall_s": report["wall_s"], "trained": report["expert_epochs_trained"],
               "workers": args.workers, **harness.machine_context()}]
    store[args.dataset] = {**report, "builds": builds,
                           "total_wall_s": round(sum(b["wall_s"] for b in builds), 1)}
    harness.save_json(EXPERTS, store)
    print(json.dumps(report))


def _accuracy_cell(args: argparse.Namespace) -> None:
    import copy

    from distill_core.callbacks import Callback
    from distill_core.data import Budget
    from distill_core.evaluation import evaluate_summary
    from distill_core.runner import distill

    class Snapshots(Callback):
        """Copies of the summary at fixed steps with the distillation CPU seconds spent until then."""

        def __init__(self, steps: list[int]) -> None:
            self.steps, self.cpu0, self.taken = set(steps), time.process_time(), []

        def after_step(self, distiller: Any, step: int, loss: float) -> None:
            if step + 1 in self.steps:
                self.taken.append((step + 1, time.process_time() - self.cpu0, copy.deepcopy(distiller.summary)))

    harness.set_threads(2)
    protocol_overrides: dict[str, Any] = {"epochs": args.eval_epochs, "n_models": args.models}
    if args.method in harness.CORESETS:  # the trajectory methods' protocol: their architecture and augmentation
        overrides: dict[str, Any] = {}
        from distill_vision.modality import default_strategy

        protocol_overrides.update(model_kwargs=COMMON["model_kwargs"], augment=f"dsa:{default_strategy(args.dataset)}")
    else:
        overrides = {**COMMON, **CPU_PROFILE[(args.method, args.ipc)], "steps": args.steps, "build_experts": False}
    snapshots = Snapshots([int(s) for s in args.curve.split(",")] if args.curve else [])
    outcome = distill(args.method, dataset=args.dataset, budget=Budget(ipc=args.ipc), seed=args.seed,
                      overrides=overrides, root=args.root, out_dir=None, evaluate=True,
                      protocol_overrides=protocol_overrides, progress=False,
                      compare_random=args.seed == 0 and args.method not in harness.CORESETS, callbacks=[snapshots])
    ev = outcome.evaluation
    assert ev is not None
    curve = [{"step": step, "distill_cpu_s": round(cpu, 1),
              "accuracy_mean": round(evaluate_summary(summary, outcome.data, modality=_vision(), protocol=ev.protocol,
                                                      seed=args.seed).mean, 2)}
             for step, cpu, summary in snapshots.taken]
    row = {"method": args.method, "dataset": args.dataset, "ipc": args.ipc, "seed": args.seed,
           "steps": 0 if args.method in harness.CORESETS else args.steps,
           "accuracy_mean": round(ev.mean, 2), "accuracy_std": round(ev.std, 2), "accuracies": ev.accuracies,
           "distill_wall_s": round(outcome.run.wall_s, 1), "distill_cpu_s": outcome.artifact.extra["distill_cpu_s"],
           "learned_lr": outcome.artifact.summary.describe()["learned_lr"], "options": overrides,
           "protocol": ev.protocol.to_dict(), "curve": curve}
    if outcome.random_evaluation is not None:
        row["random_accuracy_mean"] = round(outcome.random_evaluation.mean, 2)
    harness.emit({**row, **harness.cell_context()})


def _vision() -> Any:
    from distill_core.registry import get_modality

    return get_modality("vision")


def _accuracy(args: argparse.Namespace) -> None:
    for cell in args.cells:
        method, ipc = cell.split(":")
        for seed in args.seeds:
            row = harness.run_cell(__file__, "accuracy-cell", "--method", method, "--ipc", ipc, "--seed", seed,
                                   "--steps", args.steps, "--dataset", args.dataset, "--eval-epochs",
                                   args.eval_epochs, "--models", args.models,
                                   *(["--curve", args.curve] if args.curve and seed == args.seeds[0] else []),
                                   *(["--root", args.root] if args.root else []), check=False)
            if row:
                harness.append_jsonl(RESULTS, row)
                print(json.dumps({k: row[k] for k in ("method", "ipc", "seed", "accuracy_mean", "distill_wall_s")}),
                      flush=True)


PAPER_PROFILE = """## Paper profile (GPU; not run here)

The papers' CIFAR-10 settings as distill commands (`cifar10:PATH` is the extracted `cifar-10-batches-py` folder;
`+zca` whitens as the papers do). Experts first (100 experts of 50 epochs, plain SGD lr 0.01, batch 256, DSA; DATM's
reference trains 100-epoch sharpness-aware experts instead), then distillation with 5000 (MTT) or 10000
(TESLA, DATM) iterations, evaluated by a width-128 ConvNet trained 1000 epochs with the learned lr and DSA, 5 models.

```bash
D=cifar10:$HOME/data/cifar-10-batches-py
distill experts --dataset $D+zca --n 100 --epochs 50 --workers 4 --device cuda
S="--device cuda --eval-epochs 1000 --models 5 --set n_experts=100"
# MTT (published 46.3 / 65.3 / 71.6)
distill run mtt --dataset $D+zca --ipc 1  --steps 5000 $S --set syn_steps=50 --set max_start_epoch=2 \\
    --set lr_summary=100 --set lr_lr=1e-7 --set lr_init=0.01
distill run mtt --dataset $D+zca --ipc 10 --steps 5000 $S --set syn_steps=30 --set max_start_epoch=20 \\
    --set lr_summary=100 --set lr_lr=1e-5 --set lr_init=0.001
distill run mtt --dataset $D --ipc 50 --steps 5000 $S --set syn_steps=30 --set max_start_epoch=40 \\
    --set lr_summary=1000 --set lr_lr=1e-5 --set lr_init=0.001          # experts without ZCA for this row
# TESLA (published 48.5 / 66.4 / 72.6): IPC 1 from its README, IPC 10 / 50 with MTT's settings
distill run tesla --dataset $D --ipc 1 --steps 10000 $S --set syn_steps=50 --set max_start_epoch=5 \\
    --set lr_summary=1000 --set lr_lr=1e-7 --set lr_init=0.01
# DATM (published 46.9 / 66.8 / 76.1): its CIFAR-10 configs; experts of 100 epochs
distill run datm --dataset $D+zca --ipc 1  --steps 10000 $S --set syn_steps=80 --set initial_max_start_epoch=2 \\
    --set max_start_epoch=4 --set expansion_steps=3000 --set lr_summary=100 --set lr_lr=1e-7 --set lr_labels=5 \\
    --set batch_syn=10 --set threshold=1.1
distill run datm --dataset $D+zca --ipc 10 --steps 10000 $S      # the defaults are its IPC 10 config
distill run datm --dataset $D+zca --ipc 50 --steps 10000 $S --set initial_max_start_epoch=20 \\
    --set max_start_epoch=40 --set expansion_steps=2000 --set lr_summary=1000 --set batch_syn=500
```
"""


def _table(_: argparse.Namespace) -> None:
    lines = ["# Trajectory matching (CPU profile)", ""]
    rows = harness.read_jsonl(RESULTS)
    groups: dict[tuple[str, str, int, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], r["ipc"], r["steps"]), []).append(r)
    table = []
    for (dataset, method, ipc, steps), rs in sorted(groups.items()):
        means = [r["accuracy_mean"] for r in rs]
        table.append({"dataset": dataset, "method": method, "ipc": ipc, "steps": steps, "seeds": len(rs),
                      "acc": f"{statistics.mean(means):.2f} ± {statistics.stdev(means) if len(means) > 1 else 0:.2f}",
                      "wall": f"{statistics.mean(r['distill_wall_s'] for r in rs):.0f}",
                      "random": next((f"{r['random_accuracy_mean']:.2f}" for r in rs if "random_accuracy_mean" in r),
                                     "-")})
    coresets = {}
    for (dataset, method, ipc, _), rs in groups.items():
        if method in harness.CORESETS:
            mean = statistics.mean(r["accuracy_mean"] for r in rs)
            coresets[(dataset, ipc)] = max(coresets.get((dataset, ipc), 0.0), mean)
    for row in table:
        floor = coresets.get((row["dataset"], row["ipc"]))
        mean = float(row["acc"].split(" ")[0])
        row["vs"] = "-" if floor is None or row["method"] in harness.CORESETS else f"{mean - floor:+.2f}"
    lines += ["`vs best coreset`: the row's mean minus the best coreset mean (random / herding / k-center) of the same "
              "IPC and protocol; negative means the method does not beat that coreset here.", ""]
    lines += harness.md_table([("dataset", "dataset"), ("method", "method"), ("IPC", "ipc"), ("steps", "steps"),
                               ("seeds", "seeds"), ("accuracy % (mean ± std over seeds)", "acc"),
                               ("vs best coreset", "vs"), ("distill wall s", "wall"),
                               ("random subset % (seed 0, same protocol)", "random")], table)
    memory = harness.load_json(MEMORY)
    if memory:
        lines += ["", "## Peak memory against unrolled steps N (one outer step, IPC 10, batch 100)", ""]
        lines += harness.md_table([("gradient", "gradient"), ("N", "n"), ("width", "width"),
                                   ("s / outer step", "s_per_step"), ("peak RSS MB", "peak_rss_mb"),
                                   ("load", lambda r: r.get("load_avg_1min", "-"))], memory["rows"])
    experts = harness.load_json(EXPERTS)
    if experts:
        lines += ["", "## Expert stores", ""]
        lines += ["Built in phases (each adds epochs to every expert); wall time of all phases, 2 worker processes of "
                  "one thread each, with other jobs on the machine (see the load in the JSON).", ""]
        lines += harness.md_table([("dataset", lambda r: r[0]), ("experts", lambda r: r[1].get("experts", "-")),
                                   ("epochs", lambda r: r[1].get("epochs", "-")),
                                   ("build wall s (all phases)", lambda r: r[1].get("total_wall_s", "-")),
                                   ("disk MB per expert", lambda r: r[1].get("disk_mb_per_expert", "-"))],
                                  experts.items())
    lines += ["", *PAPER_PROFILE.strip().splitlines()]
    harness.write_markdown(TABLE, lines)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mem = sub.add_parser("memory")
    mem.add_argument("--steps", type=int, nargs="+", default=[10, 20, 40, 80])
    mem.add_argument("--gradients", nargs="+", default=["unrolled", "exact"])
    mem.add_argument("--ipc", type=int, default=10)
    mem.add_argument("--width", type=int, default=WIDTH)
    mem.add_argument("--iters", type=int, default=2)
    mem.add_argument("--reference", help="the plain MTT yardstick script (mtt_reference.py)")
    cell = sub.add_parser("memory-cell")
    cell.add_argument("--gradient", required=True)
    cell.add_argument("--n", type=int, required=True)
    cell.add_argument("--ipc", type=int, default=10)
    cell.add_argument("--width", type=int, default=WIDTH)
    cell.add_argument("--iters", type=int, default=2)
    ex = sub.add_parser("experts")
    ex.add_argument("--dataset", default="fashion-mnist")
    ex.add_argument("--epochs", type=int, default=12)
    ex.add_argument("--workers", type=int, default=2)
    ex.add_argument("--root")
    for name in ("accuracy", "accuracy-cell"):
        acc = sub.add_parser(name)
        acc.add_argument("--dataset", default="fashion-mnist")
        acc.add_argument("--steps", type=int, default=200)
        acc.add_argument("--eval-epochs", type=int, default=300)
        acc.add_argument("--models", type=int, default=3)
        acc.add_argument("--root")
        acc.add_argument("--curve", help="steps (comma-separated) at which the summary is also evaluated: accuracy "
                         "against distillation CPU seconds (first seed only)")
        if name == "accuracy":
            acc.add_argument("--cells", nargs="+", required=True, help="METHOD:IPC")
            acc.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        else:
            acc.add_argument("--method", required=True)
            acc.add_argument("--ipc", type=int, required=True)
            acc.add_argument("--seed", type=int, default=0)
    sub.add_parser("table")
    args = parser.parse_args()
    {"memory": _memory, "memory-cell": _memory_cell, "experts": _experts, "accuracy": _accuracy,
     "accuracy-cell": _accuracy_cell, "table": _table}[args.command](args)


if __name__ == "__main__":
    main()
