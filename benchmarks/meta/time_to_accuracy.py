"""Accuracy against distillation time: RFAD next to KIP with the analytic infinite-width ConvNet NTK (the RFAD
paper's KIP baseline) and KIP with a finite-width empirical ConvNet NTK, on Fashion-MNIST IPC 1.

The RFAD paper (Loo et al. 2022, https://arxiv.org/abs/2210.12067) claims RFAD reaches KIP's accuracy at a
fraction of KIP's time. Each method runs from the same random-real start (seed 0) and the summary is copied at
chosen outer steps together with the wall and CPU time spent in the outer loop up to that step (the copies are
not timed; one thread, so CPU time is the measure that other jobs on the machine do not inflate). Each copy is
then scored with the ConvNet protocol (cross-entropy on each regression target's argmax class, 3 ConvNets, 300
epochs; the column every method shares) and by KRR with the FC NTK. The result is the time
each method needs to reach a given ConvNet accuracy; the claim holds where RFAD reaches the final accuracy of
KIP-CNTK's time budget in a fraction of that budget.

KIP-CNTK's cost is linear in (target, support) pairs (a 784 x 784 pixel covariance per pair at the first layer),
so it runs with one real target per class per step (``target_batch`` 10) for ``--kip-seconds`` of wall time; RFAD
and KIP-eNTK run at run_meta.py's CPU budgets (500 targets per step). Results: ``results/time_to_accuracy.json``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/meta/time_to_accuracy.py --kip-seconds 900 --root DIR

``--root DIR``: the dataset's folder (else as run_meta.py: distill-vision's variable or $DISTILL_DATA_ROOT/NAME).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from run_meta import BUDGETS, convnet_protocol, harness, parse_one_dataset  # type: ignore[import-not-found]
from step_time_cntk import KIP_CNTK  # type: ignore[import-not-found]

from distill_core import Budget, distill, evaluate_summary, get_modality
from distill_core.distiller import Callback, Distiller
from distill_core.evaluation_krr import evaluate_krr
from distill_core.synset import Summary

logger = logging.getLogger("time_to_accuracy")


class Snapshots(Callback):
    """Copy the summary after the outer steps in ``at`` with the outer loop's wall and CPU time so far (the copies
    are not timed). CPU time (one thread) is the measure that survives other jobs on the machine."""

    def __init__(self, *, at: set[int]) -> None:
        self.at = at
        self.copies: list[tuple[int, float, float, Summary]] = []
        self._start = (0.0, 0.0)
        self._excluded = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def _copy(self, distiller: Distiller, done: int) -> None:
        now = self._now()
        wall, cpu = (now[i] - self._start[i] - self._excluded[i] for i in range(2))
        self.copies.append((done, wall, cpu, copy.deepcopy(distiller.summary).cpu()))
        after = self._now()
        self._excluded = (self._excluded[0] + after[0] - now[0], self._excluded[1] + after[1] - now[1])

    def before_run(self, distiller: Distiller) -> None:
        self._start = self._now()

    def after_step(self, distiller: Distiller, step: int, loss: float) -> None:
        if step + 1 in self.at:
            self._copy(distiller, step + 1)

    def after_run(self, distiller: Distiller) -> None:
        if not self.copies or self.copies[-1][0] != distiller.step:
            self._copy(distiller, distiller.step)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kip-seconds", type=float, default=900.0, help="wall-time budget of KIP-CNTK (its last copy "
                        "is the accuracy RFAD has to reach)")
    parser.add_argument("--rfad-steps", type=int, nargs="+", default=[5, 15, 60])
    parser.add_argument("--kip-steps", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--entk-steps", type=int, nargs="+", default=[20, 60])
    parser.add_argument("--methods", nargs="+", default=["rfad", "kip_cntk", "kip_entk"])
    parser.add_argument("--n-models", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "time_to_accuracy.json"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args, data = parse_one_dataset(parser)
    plans: dict[str, tuple[str, dict[str, Any], list[int], float | None]] = {
        "rfad": ("rfad", {**BUDGETS["rfad"], "steps": max(args.rfad_steps)}, args.rfad_steps, None),
        "kip_cntk": ("kip", {**KIP_CNTK, "target_batch": 10, "steps": 10_000}, args.kip_steps, args.kip_seconds),
        "kip_entk": ("kip", {k: v for k, v in BUDGETS["kip_entk"].items() if k != "_method"}
                     | {"steps": max(args.entk_steps)}, args.entk_steps, None),
    }
    out = Path(args.out)
    result: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {"runs": {}}
    result.update({"dataset": args.dataset, "ipc": 1, "threads": args.threads, "torch": torch.__version__,
                   "protocol": f"ConvNet, cross-entropy on argmax labels, {args.n_models} models, 300 epochs"})
    for name in args.methods:
        method, overrides, at, seconds = plans[name]
        snaps = Snapshots(at=set(at))
        load0 = harness.machine_context()["load_avg_1min"]
        distill(method, dataset=args.dataset, budget=Budget(ipc=1), seed=0, overrides=overrides,
                evaluate=False, progress=False, data=data, checkpoint_every=0,
                max_seconds=seconds, callbacks=[snaps])
        points = []
        for step, wall, cpu, summary in snaps.copies:
            conv = evaluate_summary(summary, data, modality=get_modality("vision"), seed=0,
                                    protocol=convnet_protocol(args.n_models))
            krr = evaluate_krr(summary, data, "fc_ntk")
            points.append({"step": step, "distill_wall_s": round(wall, 1), "distill_cpu_s": round(cpu, 1),
                           "convnet_acc": round(conv.mean, 2),
                           "convnet_std": round(conv.std, 2), "krr_fc_ntk_acc": round(krr.accuracy, 2)})
            logger.info("%s %s", name, points[-1])
        result["runs"][name] = {"method": method, "budget": {k: v for k, v in overrides.items() if k != "steps"},
                                "load_avg_1min_at_start": round(load0, 2), "points": points}
        out.write_text(json.dumps(result, indent=2))
    runs = result["runs"]
    if "rfad" in runs and "kip_cntk" in runs:
        kip_end = runs["kip_cntk"]["points"][-1]
        first = next((p for p in runs["rfad"]["points"] if p["convnet_acc"] >= kip_end["convnet_acc"]), None)
        result["rfad_time_to_kip_cntk_final_acc"] = None if first is None else {
            "kip_cntk_acc": kip_end["convnet_acc"], "kip_cntk_cpu_s": kip_end["distill_cpu_s"],
            "rfad_acc": first["convnet_acc"], "rfad_cpu_s": first["distill_cpu_s"],
            "cpu_time_fraction": round(first["distill_cpu_s"] / kip_end["distill_cpu_s"], 4)}
        out.write_text(json.dumps(result, indent=2))
    logger.info("%s", json.dumps(result.get("rfad_time_to_kip_cntk_final_acc")))


if __name__ == "__main__":
    main()
