"""Speedup from one to two processes (one thread each) for DM, DC, expert training and evaluation, communication
against compute per step, and a projection of step time to 8 and 64 GPUs from these measurements.

Cells (each in a fresh process; two processes through ``python -m torch.distributed.run --standalone``, gloo):

- ``dm`` / ``dc``: ``--steps`` outer steps of DM / DC at ``--ipc`` on ``--dataset`` (default Fashion-MNIST IPC 10,
  the methods' default networks and options), no evaluation. A callback inside the run times every step; seconds
  per step are the mean after ``--warmup`` steps. :func:`distill_core.distributed.comm_stats` counts the bytes each
  rank all-reduced and the wall seconds it spent inside the all-reduces (waiting for the slower rank included), per
  step after the warm-up; compute per step is step time minus that.
- ``eval``: the evaluation protocol alone (``--models`` fresh ConvNets, ``--eval-epochs``) on a random real subset of
  the same size; the models are spread over the ranks.
- ``experts``: MTT's expert protocol (its default ConvNet, SGD on the whole training set) for ``--experts`` experts
  of ``--expert-epochs`` epochs each, into a fresh store (one per run, removed afterwards); under two processes the
  experts are spread over the ranks, as ``distill experts`` does under torchrun.

``run`` appends rows to ``results.jsonl`` (one per cell and process count, with the load average and peak RSS of
rank 0) and writes ``results.md``; ``table`` rewrites ``results.md`` from the rows. ``--results DIR`` keeps a smoke run
away from the committed files. Run it on a quiet machine: the 2-process cells use both cores.

Usage::

    python benchmarks/distributed/run.py run                      # dm, dc, eval, experts with 1 and 2 processes
    python benchmarks/distributed/run.py run --cells dm --steps 40
    python benchmarks/distributed/run.py table
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import harness  # noqa: E402

CELLS = ("dm", "dc", "eval", "experts")
KEYS = ("cell", "nproc", "dataset", "ipc", "steps")

# -- projection assumptions (written into results.md) -------------------------------------------------------------
#: summaries of the projection: (name, classes, images per class, channels, side); ImageNet-1K at 64x64, the
#: resolution DM / TESLA distil it at
SHAPES = (("CIFAR-100 IPC 10", 100, 10, 3, 32), ("CIFAR-100 IPC 50", 100, 50, 3, 32),
          ("ImageNet-1K IPC 1", 1000, 1, 3, 64), ("ImageNet-1K IPC 10", 1000, 10, 3, 64))
#: links: (name, GPUs, bandwidth per GPU in bytes/s, latency per ring step in s)
LINKS = (("8 GPUs, one node, NVLink 4 (H100 SXM)", 8, 400e9, 5e-6),
         ("64 GPUs, 8 nodes, InfiniBand NDR 400 Gb/s per GPU", 64, 50e9, 10e-6))
#: how much faster than one core of the measuring machine a GPU runs the per-class work (not measured here)
DEVICE_SPEEDUPS = (30, 300)
#: DC's image updates per outer step (its loop table): IPC 1 -> 1, 10 -> 10, 50 -> 50
DC_UPDATES = {1: 1, 10: 10, 50: 50}


class StepTimer:
    """Times every outer step (a :class:`~distill_core.callbacks.Callback`) and the communication after warm-up."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times: list[float] = []
        self._last = 0.0
        self._comm_at_warmup: tuple[int, float] | None = None

    def before_run(self, distiller: Any) -> None:
        self._last = time.perf_counter()

    def after_step(self, distiller: Any, step: int, loss: float) -> None:
        from distill_core.distributed import comm_stats

        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now
        if step + 1 == self.warmup:
            stats = comm_stats()
            self._comm_at_warmup = (stats.bytes, stats.seconds)

    def after_run(self, distiller: Any) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def measured(self) -> dict[str, float]:
        """Mean seconds per step and per-step all-reduce bytes and seconds, after the warm-up."""
        from distill_core.distributed import comm_stats

        timed = self.times[self.warmup:]
        if not timed:
            raise SystemExit(f"--steps must exceed --warmup ({self.warmup}) to time a step")
        stats = comm_stats()
        bytes0, seconds0 = self._comm_at_warmup or (0, 0.0)
        n = len(timed)
        return {"s_per_step": sum(timed) / n, "s_per_step_min": min(timed),
                "comm_bytes_per_step": (stats.bytes - bytes0) / n, "comm_s_per_step": (stats.seconds - seconds0) / n,
                "timed_steps": n}


def _cell(args: argparse.Namespace) -> None:
    import torch

    from distill_core.data import Budget
    from distill_core.distributed import init_from_env, is_writer, world
    from distill_core.runner import distill

    init_from_env("cpu")
    rank, size = world()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    row: dict[str, Any] = {"cell": args.what, "nproc": size, "dataset": args.dataset, "ipc": args.ipc,
                           "steps": args.steps, "smoke": args.smoke}
    t0 = time.perf_counter()
    if args.what in ("dm", "dc"):
        timer = StepTimer(args.warmup)
        outcome = distill(args.what, dataset=args.dataset, root=args.root, budget=Budget(ipc=args.ipc), seed=0,
                          overrides={"steps": args.steps}, evaluate=False, progress=False, callbacks=[timer])
        summary = outcome.artifact.summary
        row.update(timer.measured(), summary_bytes=summary.x.numel() * summary.x.element_size(),
                   classes=outcome.data.num_classes, sample_shape=list(outcome.data.sample_shape),
                   warmup=args.warmup)
        row["compute_s_per_step"] = row["s_per_step"] - row["comm_s_per_step"]
    elif args.what == "experts":
        from distill_core.runner import build_expert_store

        report = build_expert_store("mtt", dataset=args.dataset, n=args.experts, epochs=args.expert_epochs,
                                    overrides={"experts": args.store}, root=args.root, progress=False)
        row.update(experts_s=report["wall_s"], experts=args.experts, expert_epochs=args.expert_epochs,
                   expert_epochs_trained=report["expert_epochs_trained"])
    else:
        outcome = distill("random", dataset=args.dataset, root=args.root, budget=Budget(ipc=args.ipc), seed=0,
                          progress=False, protocol_overrides={"n_models": args.models, "epochs": args.eval_epochs})
        assert outcome.evaluation is not None
        row.update(eval_s=outcome.evaluation.wall_s, models=args.models, eval_epochs=args.eval_epochs,
                   accuracy=outcome.evaluation.mean)
    row["cell_wall_s"] = time.perf_counter() - t0
    writer = is_writer()  # before the group is gone (then every process is "the only one")
    if size > 1:
        torch.distributed.destroy_process_group()
    if writer:
        harness.emit({**row, **harness.cell_context(), "rank": rank, "machine": harness.machine()})


def _run(args: argparse.Namespace) -> None:
    folder = Path(args.results)
    folder.mkdir(parents=True, exist_ok=True)
    rows = harness.read_jsonl(folder / "results.jsonl")
    for what in args.cells:
        for nproc in args.nprocs:
            store = tempfile.mkdtemp(prefix="distill-bench-experts-")  # a fresh expert store for every run
            cell_args: list[object] = [__file__, "cell", "--what", what, "--dataset", args.dataset, "--ipc", args.ipc,
                                       "--steps", args.steps, "--warmup", args.warmup, "--models", args.models,
                                       "--eval-epochs", args.eval_epochs, "--experts", args.experts,
                                       "--expert-epochs", args.expert_epochs, "--store", store,
                                       *(["--root", args.root] if args.root else []),
                                       *(["--smoke"] if args.smoke else [])]
            if nproc == 1:
                script, launch = cell_args[0], cell_args[1:]
            else:  # torchrun's launcher, as `distill run --nproc` uses it
                script, launch = "-m", ["torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                                        *cell_args]
            print(f"{what}: {nproc} process(es) ...", flush=True)
            try:
                row = harness.run_cell(script, *launch, env={"OMP_NUM_THREADS": "1"})
            finally:
                shutil.rmtree(store, ignore_errors=True)
            assert row is not None
            harness.append_jsonl(folder / "results.jsonl", row)
            rows.append(row)
            print(f"  {_describe(row)}", flush=True)
    _table(folder)


def _describe(row: dict[str, Any]) -> str:
    if row["cell"] == "eval":
        return f"evaluation {row['eval_s']:.1f} s ({row['models']} models)"
    if row["cell"] == "experts":
        return f"experts {row['experts_s']:.1f} s ({row['experts']} experts x {row['expert_epochs']} epochs)"
    return (f"{row['s_per_step']:.3f} s/step, all-reduce {row['comm_bytes_per_step'] / 1e6:.2f} MB and "
            f"{row['comm_s_per_step'] * 1e3:.1f} ms per step")


# -- the table ----------------------------------------------------------------------------------------------------
def _ring_seconds(nbytes: float, gpus: int, bandwidth: float, latency: float) -> float:
    """Ring all-reduce of ``nbytes`` over ``gpus``: ``2(K-1)/K · bytes / bandwidth + 2(K-1) · latency``."""
    return 2 * (gpus - 1) / gpus * nbytes / bandwidth + 2 * (gpus - 1) * latency


def _pairs(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(1-process row, 2-process row) per cell, the newest of each."""
    newest = harness.latest(rows, KEYS)
    out = []
    for cell in CELLS:
        ones = [r for k, r in newest.items() if r["cell"] == cell and r["nproc"] == 1]
        for one in ones:
            two = newest.get((cell, 2, one["dataset"], one["ipc"], one["steps"]))
            if two is not None:
                out.append((one, two))
    return out


def _time(row: dict[str, Any]) -> float:
    return {"eval": row.get("eval_s"), "experts": row.get("experts_s")}.get(row["cell"]) or row["s_per_step"]


def _whole(row: dict[str, Any]) -> bool:
    """A cell timed as a whole (evaluation, expert training), not per outer step."""
    return row["cell"] in ("eval", "experts")


def _matching(row: dict[str, Any], key: str, scale: float, spec: str) -> str:
    """``row[key] * scale`` formatted, for the matching cells ("-" for the evaluation cell)."""
    return "-" if _whole(row) else format(row[key] * scale, spec)


def _table(folder: Path) -> None:
    rows = harness.read_jsonl(folder / "results.jsonl")
    pairs = _pairs(rows)
    smoke = any(one.get("smoke") or two.get("smoke") for one, two in pairs)
    lines = ["# Distributed speedup: 1 and 2 processes, one thread each", ""]
    if smoke:
        lines += ["**SMOKE RUN: tiny settings that check the script works; these numbers measure nothing.**", ""]
    lines += ["Written by `python benchmarks/distributed/run.py table` from `results.jsonl`. Two processes are "
              "launched by torchrun (gloo), as `distill run ... --nproc 2` does; `OMP_NUM_THREADS=1` in every "
              "process. Seconds per step: mean over the steps after the warm-up, timed inside the run. The "
              "all-reduce columns are rank 0's (bytes it summed per step; wall time in the collectives, waiting for "
              "the slower rank included); compute = step time - all-reduce time.", ""]
    columns: list[harness.Column] = [
        ("cell", lambda p: f"{p[0]['cell']} {p[0]['dataset']}" + ("" if p[0]["cell"] == "experts"
                                                                    else f" IPC {p[0]['ipc']}")),
        ("steps (warm-up)", lambda p: "-" if _whole(p[0]) else f"{p[0]['steps']} ({p[0]['warmup']})"),
        ("1 proc s", lambda p: f"{_time(p[0]):.3f}"),
        ("2 proc s", lambda p: f"{_time(p[1]):.3f}"),
        ("speedup", lambda p: f"{_time(p[0]) / _time(p[1]):.2f}x"),
        ("all-reduce MB / step", lambda p: _matching(p[1], "comm_bytes_per_step", 1e-6, ".3f")),
        ("summary MB", lambda p: _matching(p[1], "summary_bytes", 1e-6, ".3f")),
        ("all-reduce ms / step", lambda p: _matching(p[1], "comm_s_per_step", 1e3, ".1f")),
        ("compute s / step (2 proc)", lambda p: _matching(p[1], "compute_s_per_step", 1.0, ".3f")),
        ("peak RSS MB (1 / 2, rank 0)", lambda p: f"{p[0]['peak_rss_mb']} / {p[1]['peak_rss_mb']}"),
        ("load 1 min (1 / 2)", lambda p: f"{p[0]['load_avg_1min']} / {p[1]['load_avg_1min']}"),
    ]
    lines += harness.md_table(columns, pairs)
    evals = [p for p in pairs if p[0]["cell"] == "eval"]
    if evals:
        lines += ["", "Evaluation cells: seconds for the whole protocol (" + ", ".join(
            f"{p[0]['models']} models x {p[0]['eval_epochs']} epochs" for p in evals) + "), models spread over ranks."]
    experts = [p for p in pairs if p[0]["cell"] == "experts"]
    if experts:
        lines += ["", "Expert cells: seconds to train the whole store (" + ", ".join(
            f"{p[0]['experts']} experts x {p[0]['expert_epochs']} epochs, MTT's expert protocol" for p in experts)
            + "), experts spread over ranks, each writing its own files into the one store."]
    lines += ["", *_projection(pairs)]
    harness.write_markdown(folder / "results.md", lines)
    print(f"wrote {folder / 'results.md'}")


def _projection(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    lines = ["## Projection to 8 and 64 GPUs", ""]
    matching = [p for p in pairs if p[0]["cell"] in ("dm", "dc")]
    if not matching:
        return [*lines, "No DM / DC pair measured yet."]
    lines += [
        "Computed from the measured rows above; nothing in this section ran on a GPU. Assumptions:",
        "",
        "- **Split of a step.** From the 1- and 2-process step times t1, t2 and the 2-process all-reduce time c2, "
        "the class-sharded fraction p of a 1-process step solves t2 - c2 = t1 (1 - p + p/2) (Amdahl), clipped to "
        "[0, 1]. The rest (1 - p: DC's inner network training on the whole summary, the fresh network, the "
        "optimizer step) runs on every rank and does not shrink with K; it is taken as measured (DC's inner "
        "epochs and summary size at the measured IPC), scaled like the per-class work below.",
        "- **Compute per class** is p t1 / C (C classes of the measured dataset) and scales with pixels x channels "
        "of the image (ConvNet FLOPs; depth and width as measured) and 1/K over K GPUs; the synthetic side's share "
        "is taken as at the measured IPC. A GPU is assumed to do the measured one-core work "
        + " or ".join(f"{s}x" for s in DEVICE_SPEEDUPS) + " faster (not measured here: both are shown).",
        "- **All-reduce** of the summary's float32 gradient, once per image update (DM: 1 per step; DC: its loop "
        "table's updates, 10 at IPC 10, 50 at IPC 50, 1 at IPC 1), ring: 2(K-1)/K x bytes / B + 2(K-1) x latency, "
        "with " + "; ".join(f"{name}: B = {bw / 1e9:.0f} GB/s, latency {lat * 1e6:.0f} us per ring step"
                            for name, _, bw, lat in LINKS) + ". NCCL's tree or hierarchical all-reduce would "
        "lower the latency term at 64 GPUs; the bandwidth term is the ring's lower bound.",
        "- No overlap of communication with compute (the all-reduce sits between the backward pass and the image "
        "update), no data-loading cost, and the real batches per class are as measured (DM 256, DC 256).",
        "",
    ]
    columns: list[harness.Column] = [
        ("method (measured on)", "method"), ("summary", "shape"), ("GPUs / link", "link"),
        ("all-reduce MB x per step", "bytes"), ("all-reduce ms / step", "comm"),
        *[(f"step ms, GPU {s}x: 1 GPU -> K", f"step{s}") for s in DEVICE_SPEEDUPS],
        *[(f"comm share {s}x", f"share{s}") for s in DEVICE_SPEEDUPS],
    ]
    table_rows = []
    for one, two in matching:
        t1, t2, c2 = one["s_per_step"], two["s_per_step"], two["comm_s_per_step"]
        p = min(1.0, max(0.0, 2 * (1 - (t2 - c2) / t1)))
        pixels_measured = math.prod(one["sample_shape"])  # channels x height x width
        per_class = p * t1 / one["classes"]
        replicated = (1 - p) * t1
        for shape, classes, ipc, channels, size in SHAPES:
            scale = channels * size * size / pixels_measured
            nbytes = classes * ipc * channels * size * size * 4
            updates = 1 if one["cell"] == "dm" else DC_UPDATES.get(ipc, ipc)
            for link, gpus, bandwidth, latency in LINKS:
                comm = updates * _ring_seconds(nbytes, gpus, bandwidth, latency)
                row = {"method": f"{one['cell'].upper()} ({one['dataset']} IPC {one['ipc']}, p = {p:.2f})",
                       "shape": shape, "link": link,
                       "bytes": f"{nbytes / 1e6:.1f} x {updates}", "comm": f"{comm * 1e3:.2f}"}
                for s in DEVICE_SPEEDUPS:
                    single = (classes * per_class + replicated) * scale / s
                    many = (classes * per_class / gpus + replicated) * scale / s + comm
                    row[f"step{s}"] = f"{single * 1e3:.0f} -> {many * 1e3:.1f} ({single / many:.1f}x)"
                    row[f"share{s}"] = f"{comm / many:.0%}"
                table_rows.append(row)
    return [*lines, *harness.md_table(columns, table_rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "cell"):
        p = sub.add_parser(name)
        p.add_argument("--dataset", default="fashion-mnist")
        p.add_argument("--root", help="folder of the dataset files (default: distill's own search)")
        p.add_argument("--ipc", type=int, default=10)
        p.add_argument("--steps", type=int, default=40, help="outer steps of the dm / dc cells")
        p.add_argument("--warmup", type=int, default=5, help="steps not timed")
        p.add_argument("--models", type=int, default=4, help="evaluation cell: fresh models")
        p.add_argument("--eval-epochs", type=int, default=100, help="evaluation cell: epochs per model")
        p.add_argument("--experts", type=int, default=2, help="experts cell: experts to train")
        p.add_argument("--expert-epochs", type=int, default=1, help="experts cell: epochs per expert")
        p.add_argument("--smoke", action="store_true", help="mark the rows as a smoke run (tiny settings)")
        if name == "run":
            p.add_argument("--cells", nargs="+", choices=CELLS, default=list(CELLS))
            p.add_argument("--nprocs", nargs="+", type=int, default=[1, 2])
            p.add_argument("--results", default=str(HERE), help="folder of results.jsonl / results.md")
        else:
            p.add_argument("--what", choices=CELLS, required=True)
            p.add_argument("--store", required=True, help="experts cell: the (fresh) expert store folder")
    table = sub.add_parser("table")
    table.add_argument("--results", default=str(HERE))
    args = parser.parse_args()
    if args.command == "cell":
        _cell(args)
    elif args.command == "run":
        _run(args)
    else:
        _table(Path(args.results))


if __name__ == "__main__":
    main()
