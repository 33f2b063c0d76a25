"""Seconds per outer step of RFAD next to KIP with the analytic infinite-width ConvNet NTK (``kernel="cntk"``, the
kernel of the RFAD paper's KIP baseline), alternating in one process on Fashion-MNIST IPC 1.

RFAD runs at run_meta.py's CPU budget (4 random width-64 ConvNets, 500 targets per step). KIP-CNTK's cost is
linear in the number of (target, support) pairs, each a 784 x 784 pixel covariance at the first layer, so it runs
with small target batches (``--kip-targets``, default 10 and 30: a step stays under ~2 minutes on this machine);
the two sizes give the per-pair cost, which is extrapolated linearly to RFAD's 500 targets. KIP-CNTK runs with the
``torch.compile``d element-wise layer (``conv_compile``; one untimed warm-up step per size compiles it) and, at the
smallest size, eager. The forward kernel alone (no gradient; what KRR evaluation pays) is timed as well.
Results: ``results/step_time_cntk.json``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/meta/step_time_cntk.py --steps 1 --rounds 2 --root DIR

``--root DIR``: the dataset's folder (else as run_meta.py: distill-vision's variable or $DISTILL_DATA_ROOT/NAME).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from run_meta import BUDGETS, harness, parse_one_dataset  # type: ignore[import-not-found]

from distill_core import Budget, distill
from distill_vision.cntk import CNTK

# KIP's ConvNet (Nguyen et al. 2021): 3 x [conv3x3 -> ReLU -> avg-pool 2x2], dense readout of the 3x3 map
KIP_CNTK: dict[str, Any] = {"kernel": "cntk", "conv_depth": 3, "conv_pool": True, "conv_readout": "flatten",
                            "lr_summary": 0.01}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kip-targets", type=int, nargs="+", default=[10, 30])
    args, data = parse_one_dataset(parser)
    variants: dict[str, tuple[str, dict[str, Any]]] = {"rfad": ("rfad", dict(BUDGETS["rfad"]))}
    for n in args.kip_targets:
        variants[f"kip_cntk_t{n}"] = ("kip", {**KIP_CNTK, "conv_compile": True, "target_batch": n})
    variants[f"kip_cntk_eager_t{min(args.kip_targets)}"] = ("kip", {**KIP_CNTK, "target_batch": min(args.kip_targets)})
    warmup: dict[str, float] = {}
    for variant, (method, budget) in variants.items():
        if budget.get("conv_compile"):
            start = time.perf_counter()
            distill(method, dataset=args.dataset, budget=Budget(ipc=1), seed=99, overrides={**budget, "steps": 1},
                    evaluate=False, progress=False, data=data, checkpoint_every=0)
            warmup[variant] = round(time.perf_counter() - start, 1)
            print("warm-up", variant, warmup[variant], flush=True)
    with torch.no_grad():  # compile the gradient-free forward of the kernel-only timing below
        CNTK(depth=3, pool=True, readout="flatten", compile=True)(data.x_train[:10], data.x_train[10:20])
    times: dict[str, dict[str, list[float]]] = {clock: {v: [] for v in variants} for clock in ("wall", "cpu")}
    fwd_pair: dict[str, list[float]] = {"eager": [], "compiled": []}
    for rnd in range(args.rounds):
        for variant, (method, budget) in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            out = distill(method, dataset=args.dataset, budget=Budget(ipc=1), seed=rnd,
                          overrides={**budget, "steps": args.steps}, evaluate=False,
                          progress=False, data=data, checkpoint_every=0)
            times["wall"][variant].append((time.perf_counter() - wall) / out.run.steps)
            times["cpu"][variant].append((time.process_time() - cpu) / out.run.steps)
            print(variant, rnd, round(times["wall"][variant][-1], 2), round(times["cpu"][variant][-1], 2), flush=True)
            save(args, data.num_classes, times, fwd_pair, warmup, variants)
        # forward-only kernel between 10 images and 10 others: the KRR evaluation cost per pair
        x = data.x_train[torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(rnd))[:20]]
        for mode, times_fwd in fwd_pair.items():
            cpu = time.process_time()
            with torch.no_grad():
                CNTK(depth=3, pool=True, readout="flatten", compile=mode == "compiled")(x[:10], x[10:])
            times_fwd.append((time.process_time() - cpu) / 100)
            print("cntk forward cpu s/pair", mode, round(times_fwd[-1], 4), flush=True)
        save(args, data.num_classes, times, fwd_pair, warmup, variants)


def save(args: argparse.Namespace, n_support: int, times: dict[str, dict[str, list[float]]],
         fwd_pair: dict[str, list[float]], warmup: dict[str, float],
         variants: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Medians, the per-target cost fit and the RFAD ratios of what has been measured so far, as JSON."""
    result: dict[str, Any] = {
        "dataset": args.dataset, "ipc": 1, "support": n_support, "steps_per_run": args.steps,
        "rounds_requested": args.rounds, **harness.machine_context(),
        "architecture": "3 x [conv3x3 'same' -> ReLU -> avg-pool 2x2], flatten, dense; w_var 2, b_var 0.01",
        "budgets": {v: b for v, (_, b) in variants.items()}, "compile_warmup_wall_s": warmup, "all": times,
        "cntk_forward_cpu_s_per_pair": {m: round(statistics.median(t), 4) for m, t in fwd_pair.items() if t},
    }
    rfad_targets = BUDGETS["rfad"]["target_batch"]
    n_lo, n_hi = min(args.kip_targets), max(args.kip_targets)
    for clock, per_variant in times.items():
        med = {v: statistics.median(t) for v, t in per_variant.items() if t}
        result[f"s_per_step_{clock}"] = {v: round(m, 3) for v, m in med.items()}
        if "rfad" not in med:
            continue
        ratios = {v: round(m / med["rfad"], 1) for v, m in med.items() if v != "rfad"}
        lo, hi = f"kip_cntk_t{n_lo}", f"kip_cntk_t{n_hi}"
        if lo in med and hi in med and n_hi > n_lo:
            # per-step cost = fixed + per_target * targets (each target pairs with every support image)
            per_target = (med[hi] - med[lo]) / (n_hi - n_lo)
            at_rfad = med[lo] + per_target * (rfad_targets - n_lo)
            result[f"kip_cntk_{clock}_s_per_target"] = round(per_target, 3)
            result[f"kip_cntk_{clock}_s_per_step_at_{rfad_targets}_targets_extrapolated"] = round(at_rfad, 1)
            ratios[f"kip_cntk_at_{rfad_targets}_targets_extrapolated"] = round(at_rfad / med["rfad"], 1)
        result[f"over_rfad_{clock}"] = ratios
    (Path(__file__).parent / "results" / "step_time_cntk.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
