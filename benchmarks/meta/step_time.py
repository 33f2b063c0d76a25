"""Seconds per outer step of RFAD and of KIP with ConvNet kernels (empirical NTK, random-feature NNGP), measured
alternately in one process on Fashion-MNIST IPC 1 at run_meta.py's CPU budgets (500 targets per step, width-64
ConvNets): the per-step half of the "RFAD at a fraction of KIP's time" comparison.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/meta/step_time.py --steps 6 --rounds 2 [--threads 1] --root DIR

``--root DIR``: the dataset's folder (else as run_meta.py: distill-vision's variable or $DISTILL_DATA_ROOT/NAME).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from run_meta import BUDGETS, harness, parse_one_dataset  # type: ignore[import-not-found]

from distill_core import Budget, distill

VARIANTS = ("rfad", "kip_entk", "kip_conv")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args, data = parse_one_dataset(parser)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for rnd in range(args.rounds):
        for variant in VARIANTS:
            overrides = {**BUDGETS[variant], "steps": args.steps}
            name = overrides.pop("_method", variant)
            start = time.perf_counter()
            out = distill(name, dataset=args.dataset, budget=Budget(ipc=1), seed=rnd, overrides=overrides,
                          evaluate=False, progress=False, data=data, checkpoint_every=0)
            times[variant].append((time.perf_counter() - start) / out.run.steps)
            print(variant, rnd, round(times[variant][-1], 3), flush=True)
    med = {v: statistics.median(t) for v, t in times.items()}
    result = {"dataset": args.dataset, "ipc": 1, "steps_per_run": args.steps, "rounds": args.rounds,
              **harness.machine_context(),
              "s_per_step": {v: round(m, 3) for v, m in med.items()}, "all": times,
              "rfad_over_kip_entk": round(med["rfad"] / med["kip_entk"], 3),
              "budgets": {v: BUDGETS[v] for v in VARIANTS}}
    print(json.dumps(result))
    (Path(__file__).parent / "results" / "step_time.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
