"""Kernel and KRR throughput next to torch.matmul, measured in the same process (PERFORMANCE.md: compare ratios).

FLOPs counted: the ``2 n1 n2 d`` of the input inner products (the only matmul in an FC kernel tile; the arc-cosine
recursion is O(n1 n2 depth) element-wise work that is *not* counted, so the ratio is the honest "useful matmul
FLOP/s"); for KRR the Cholesky ``n³/3`` + two triangular solves ``2 n² c`` + the target product ``2 m n c``.

Usage: OMP_NUM_THREADS=N python benchmarks/meta/kernel_speed.py --threads N [--out benchmarks/meta/results]

On an oversubscribed machine, multi-threaded element-wise passes pay thread-synchronisation latency that one big
matmul does not; run with ``--threads 1`` too and compare the ratios. The matmul and the kernels of one tile shape
are timed in interleaved rounds (each round runs every variant once; the best round of each counts), so a change
of machine load hits all of them alike. ``compiled`` variants run the element-wise recursion as one
``torch.compile``-generated loop per layer (``fc_ntk(..., compile=True)``; compiled before timing).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from distill_core.kernels import fc_nngp, fc_ntk
from distill_core.objectives import krr_predict


def best_time(fn, repeats: int = 5) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def best_times_interleaved(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Best wall time of each function over ``rounds`` rounds that run every function once (after a warm-up)."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds per tile shape")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = 784
    rows = []
    # the machine's matmul on the same shapes as one kernel tile
    for n1, n2 in ((2048, 2048), (5000, 100), (10000, 1000)):
        a, b = torch.randn(n1, d), torch.randn(n2, d)
        flops = 2 * n1 * n2 * d
        fns: dict[str, Callable[[], object]] = {"matmul": lambda a=a, b=b: a @ b.T}
        for depth in (1, 3):
            for compiled in (False, True):
                suffix = "_compiled" if compiled else ""
                fns[f"fc_ntk_depth{depth}{suffix}"] = partial(fc_ntk, a, b, depth=depth, compile=compiled)
        fns["fc_nngp_depth1"] = partial(fc_nngp, a, b, depth=1)
        with torch.no_grad():
            best = best_times_interleaved(fns, args.rounds)
        row = {"shape": f"{n1}x{n2}x{d}", "matmul_gflops": flops / best["matmul"] / 1e9}
        for name, t in best.items():
            if name != "matmul":
                row[f"{name}_gflops"] = flops / t / 1e9
                row[f"{name}_fraction_of_matmul"] = best["matmul"] / t
        rows.append(row)
    # KRR: support n (KIP scale) and m targets, float64 solve as KIP uses
    krr_rows = []
    for n, m in ((100, 5000), (1000, 10000), (2000, 10000)):
        xs, xt = torch.randn(n, d), torch.randn(m, d)
        with torch.no_grad():
            k_ss, k_ts = fc_ntk(xs), fc_ntk(xt, xs)
        y = torch.randn(n, 10)
        c = 10
        flops_solve = n**3 / 3 + 2 * n * n * c + 2 * m * n * c
        for f64 in (False, True):
            t = best_time(lambda: krr_predict(k_ts, k_ss, y, reg=1e-6, float64=f64))  # noqa: B023
            mm = torch.randn(n, n, dtype=torch.float64 if f64 else torch.float32)
            t_mm = best_time(lambda: mm @ mm)  # noqa: B023
            krr_rows.append({"n_support": n, "n_targets": m, "float64": f64, "krr_gflops": flops_solve / t / 1e9,
                             "matmul_nxn_gflops": 2 * n**3 / t_mm / 1e9, "seconds": t})
    result = {"threads": args.threads, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(),
              "note": f"shared 2-core machine (other jobs running); kernels: best of {args.rounds} interleaved rounds "
                      "with the matmul, KRR: best of 5 repeats",
              "kernel": rows, "krr": krr_rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"kernel_speed_{args.threads}thread.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
