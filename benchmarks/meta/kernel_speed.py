"""Kernel and KRR throughput next to torch.matmul, measured in the same process (PERFORMANCE.md: compare ratios).

FLOPs counted: the ``2 n1 n2 d`` of the input inner products (the only matmul in an FC kernel tile; the arc-cosine
recursion is O(n1 n2 depth) element-wise work that is *not* counted, so the ratio is the honest "useful matmul
FLOP/s"); for KRR the Cholesky ``n³/3`` + two triangular solves ``2 n² c`` + the target product ``2 m n c``.

Usage: OMP_NUM_THREADS=N python benchmarks/meta/kernel_speed.py --threads N [--out benchmarks/meta/results]

On an oversubscribed machine, multi-threaded element-wise passes pay thread-synchronisation latency that one big
matmul does not; run with ``--threads 1`` too and compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
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
        t_mm = best_time(lambda a=a, b=b: a @ b.T)
        row = {"shape": f"{n1}x{n2}x{d}", "matmul_gflops": flops / t_mm / 1e9}
        for name, fn in (("fc_ntk_depth1", lambda a=a, b=b: fc_ntk(a, b, depth=1)),
                         ("fc_ntk_depth3", lambda a=a, b=b: fc_ntk(a, b, depth=3)),
                         ("fc_nngp_depth1", lambda a=a, b=b: fc_nngp(a, b, depth=1))):
            with torch.no_grad():
                t = best_time(fn)
            row[f"{name}_gflops"] = flops / t / 1e9
            row[f"{name}_fraction_of_matmul"] = t_mm / t
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
              "note": "shared 2-core machine (other engineers running); best of 5 repeats",
              "kernel": rows, "krr": krr_rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"kernel_speed_{args.threads}thread.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
