"""Peak extra memory of blocked KRR prediction as the real target set grows (MNIST train images as targets,
100 support images, FC NTK): blocked (1024 targets per block) vs one unblocked kernel.

Each configuration runs in a fresh subprocess (``harness.run_cell``); the peak resident set size is reset
(``/proc/self/clear_refs``) after the data is loaded, so the reported number is the working memory of the
prediction itself. This is the one benchmark that does not read peak memory as ``harness.peak_rss_mb``
(``ru_maxrss``): that peak cannot be reset, and loading MNIST peaks far above the few MB a blocked prediction adds.

Usage: OMP_NUM_THREADS=2 python benchmarks/meta/krr_memory.py --root DIR   (the folder of MNIST's train.npz and
test.npz; default: $DISTILL_MNIST_ROOT, else $DISTILL_DATA_ROOT/mnist)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness

CHILD = r"""
import json, sys, time, torch
from distill_core.kernels import fc_ntk
from distill_core.objectives import krr_predict_blocked
from distill_vision.datasets import load
torch.set_num_threads(2)
m, block, root = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
data = load("mnist", root=root)
x_t = data.x_train[:m].contiguous()
x_s, y_s = data.x_test[:100].contiguous(), torch.nn.functional.one_hot(data.y_test[:100], 10).float() - 0.1
del data
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS")
t0 = time.perf_counter()
with torch.no_grad():
    pred = krr_predict_blocked(fc_ntk, x_s, y_s, x_t, block_size=block)
wall = time.perf_counter() - t0
print(json.dumps({"targets": m, "block_size": block, "extra_peak_MB": round(status("VmHWM") - base, 1),
                  "targets_MB": round(x_t.numel() * 4 / 2**20, 1), "seconds": round(wall, 3)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", "--mnist", default=None, help="MNIST folder (train.npz, test.npz)")
    args = parser.parse_args()
    root = harness.data_root(args.root, env="DISTILL_MNIST_ROOT", sub="mnist", what="MNIST")
    rows = []
    for m in (10_000, 30_000, 60_000):
        for block in (1024, m):
            row = harness.run_cell("-c", CHILD, m, block, root)
            assert row is not None
            row["mode"] = "blocked" if block < m else "unblocked"
            row.update({**harness.machine_context(), "threads": 2})  # the child runs 2 torch threads
            rows.append(row)
            print(row, flush=True)
    result = {"setup": "MNIST, 100 support images, FC NTK depth 1, no_grad; 2 threads; shared machine", "rows": rows}
    harness.save_json(Path(__file__).parent / "results" / "krr_memory.json", result, indent=2)


if __name__ == "__main__":
    main()
