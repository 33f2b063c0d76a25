"""TBPTT memory: bytes the autograd graph keeps for the backward pass of ``unrolled_sgd`` as a function of the
truncation window k and of the number of inner steps T (DD's LeNet on 28x28 inputs, 100 synthetic images).

Measured exactly with ``torch.autograd.graph.saved_tensors_hooks``: the storages saved for backward that are
still alive right before ``backward()`` (each counted once; the transient saves of the detached steps before the
window are freed by then), plus the wall time of forward + backward. Expected: grows linearly with k
and is flat in T for a fixed k.

Usage: OMP_NUM_THREADS=1 python benchmarks/meta/tbptt_memory.py
"""

from __future__ import annotations

import json
import time
import weakref
from pathlib import Path

import torch
import torch.nn.functional as F

from distill_core.objectives import init_params, unrolled_sgd
from distill_vision.models import build_model


def measure(T: int, k: int | None, checkpoint: bool = False) -> dict[str, float | int | bool | None]:
    torch.manual_seed(0)
    net = build_model("lenet", sample_shape=(1, 28, 28), num_classes=10)
    params = init_params(net, reinit=False)
    x = torch.randn(100, 1, 28, 28, requires_grad=True)
    y = torch.arange(10).repeat(10)
    lr = torch.tensor(0.02, requires_grad=True)
    saved: list[weakref.ref[torch.Tensor]] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(weakref.ref(t))
        return t

    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        final = unrolled_sgd(net, params, x, y, steps=T, lr=lr, loss_fn=F.cross_entropy, truncate=k,
                             checkpoint=checkpoint, schedule=[torch.arange(i % 10 * 10, i % 10 * 10 + 10)
                                                              for i in range(T)])
        loss = F.cross_entropy(torch.func.functional_call(net, final, (x[:50].detach(),)), y[:50])
    # storages still held by the graph right before backward (transient saves of detached steps are gone)
    alive = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for r in saved if (t := r()) is not None}
    total = [sum(alive.values())]
    loss.backward()
    return {"T": T, "k": k, "checkpoint": checkpoint, "saved_MB": round(total[0] / 2**20, 2),
            "seconds": round(time.perf_counter() - t0, 3)}


def main() -> None:
    torch.set_num_threads(1)
    rows = [measure(T, k) for T in (10, 40) for k in (1, 5, 10)]
    rows += [measure(40, 40), measure(40, 10, checkpoint=True)]
    out = Path(__file__).parent / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {"setup": "LeNet 28x28, 100 synthetic images, one group of 10 per step; 1 thread; shared machine",
              "rows": rows}
    (out / "tbptt_memory.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
