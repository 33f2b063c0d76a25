"""dd-attn CPU profile: distill a dataset at a few sequences per class by fine-tuning the pretrained MiniLM encoder
through the inner steps, then evaluate with the native protocol (a fresh copy of the pretrained weights fine-tuned
on the summary exactly as in the inner loop) next to random real sentences fine-tuned the same way
(``--compare-random``: same steps, same learned lr, hard labels, no attention labels).

One row per (dataset, ipc, seed), rewritten after every seed into ``dd_attn_results.json`` and its markdown
``dd_attn_results.md`` (so a cut run keeps what it finished); every row records the machine's load. Run from the
repository root, one process at a time on a shared machine::

    OMP_NUM_THREADS=1 python benchmarks/text/dd_attn.py --root DIR --dataset trec --seeds 0 1 2 --steps 30

``--cross-arch`` also trains the learners of the plain protocol on the summary and on the same random real
sentences: ``minilm-head`` (a linear head on the frozen pretrained encoder) and ``textcnn`` (from scratch on the
token embeddings), minibatch SGD with :func:`distill_text.modality.plain_protocol`'s settings. ``--upper-bound N``
fine-tunes the whole pretrained encoder on ``N`` seeded real sentences per class (a stated stand-in for the full
training set on a CPU) with the summary's fine-tuning procedure, full-batch SGD, for ``--upper-steps`` steps at
``--upper-lr`` (fixed settings, nothing selected), and tests it on the whole test set.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import harness  # noqa: E402

RESULTS = HERE / "dd_attn_results.json"
SPECS = {"trec": "trec?L=32", "ag_news": "ag_news?L=32", "sst2": "sst2?L=32&max_train=10000"}
KEYS = ("dataset", "ipc", "seed", "steps", "inner_steps", "attention_labels")


def run(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from distill_core import Budget, distill

    overrides: dict[str, Any] = {"steps": args.steps, "inner_steps": args.inner_steps, "batch_real": args.batch_real,
                                 "lr_init": args.lr_init, "attention_labels": not args.no_attention}
    for item in args.set or []:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value)
    start = time.perf_counter()
    outcome = distill("dd-attn", dataset=SPECS[args.dataset], root=args.root, budget=Budget(ipc=args.ipc), seed=seed,
                      overrides=overrides, compare_random=True, progress=False,
                      protocol_overrides={"n_models": args.models})
    total = time.perf_counter() - start
    result, baseline = outcome.evaluation, outcome.random_evaluation
    assert result is not None and baseline is not None
    summary = outcome.artifact.summary
    distill_s = outcome.run.wall_s
    extra: dict[str, Any] = {}
    if args.cross_arch:
        extra["cross_arch"] = cross_architecture(outcome, seed=seed, models=args.models)
    if args.upper_bound:
        extra["upper_bound"] = upper_bound(outcome.data, per_class=args.upper_bound, steps=args.upper_steps,
                                           lr=args.upper_lr, seed=seed, models=args.upper_models)
    return {**extra,
        "dataset": args.dataset, "spec": SPECS[args.dataset], "ipc": args.ipc, "seed": seed, "steps": args.steps,
        "inner_steps": args.inner_steps, "attention_labels": not args.no_attention, "overrides": overrides,
        "dd_attn": round(result.mean, 2), "dd_attn_std": round(result.std, 2),
        "random": round(baseline.mean, 2), "random_std": round(baseline.std, 2), "eval_models": args.models,
        "learned_lr": round(float(summary.lr.detach()), 5) if summary.lr is not None else None,
        "distill_s": round(distill_s, 1),
        "s_per_outer_step": round(distill_s / max(1, args.steps), 2),
        "total_s": round(total, 1), **harness.cell_context(),
    }


def cross_architecture(outcome: Any, *, seed: int, models: int) -> dict[str, dict[str, float]]:
    """Accuracy (%) of the plain protocol's ``minilm-head`` and ``textcnn`` learners on the summary and on a random
    real subset of the same size (seeded like the run's ``--compare-random`` subset)."""
    import torch

    from distill_core import Budget, evaluate_summary
    from distill_core.registry import get_modality
    from distill_core.runner import build_method
    from distill_text.modality import plain_protocol

    modality, data, summary = get_modality("text"), outcome.data, outcome.artifact.summary
    subset = build_method("random").init_summary(data, budget=Budget(ipc=summary.budget // data.num_classes),
                                                 modality=modality, generator=torch.Generator().manual_seed(seed))
    out = {}
    for learner in ("minilm-head", "textcnn"):
        protocol = plain_protocol(learner, n_models=models)
        ours = evaluate_summary(summary, data, modality=modality, protocol=protocol, seed=seed)
        base = evaluate_summary(subset, data, modality=modality, protocol=protocol, seed=seed)
        out[learner] = {"summary": round(ours.mean, 2), "summary_std": round(ours.std, 2),
                        "random": round(base.mean, 2), "random_std": round(base.std, 2)}
    return out


def upper_bound(data: Any, *, per_class: int, steps: int, lr: float, seed: int, models: int) -> dict[str, Any]:
    """The pretrained encoder fine-tuned end to end on ``per_class`` seeded real sentences of every class (full-batch
    SGD, ``steps`` steps at ``lr``), tested on the whole test set: the CPU stand-in for full-data fine-tuning."""
    import torch

    from distill_core import evaluate_summary
    from distill_core.data import ClassIndex
    from distill_core.registry import get_modality
    from distill_text.modality import plain_protocol

    modality = get_modality("text")
    index = ClassIndex(data.y_train, data.num_classes)
    picked = index.sample_sizes([per_class] * data.num_classes, generator=torch.Generator().manual_seed(seed))
    subset = modality.subset_summary(data, picked)
    start = time.perf_counter()
    result = evaluate_summary(subset, data, modality=modality, seed=seed,
                              protocol=plain_protocol("minilm-ft", epochs=steps, lr=lr, n_models=models))
    return {"per_class": per_class, "sentences": len(picked), "steps": steps, "lr": lr,
            "accuracy": round(result.mean, 2), "accuracy_std": round(result.std, 2), "models": models,
            "wall_s": round(time.perf_counter() - start, 1)}


def _cross(learner: str) -> Any:
    def cell(r: dict[str, Any]) -> str:
        got = r.get("cross_arch", {}).get(learner)
        return "-" if got is None else f"{got['summary']} / {got['random']}"
    return cell


def _upper(r: dict[str, Any]) -> str:
    got = r.get("upper_bound")
    return "-" if got is None else f"{got['accuracy']} ± {got['accuracy_std']} ({got['per_class']}/class)"


def write(rows: list[dict[str, Any]]) -> None:
    harness.save_json(RESULTS, {"machine": harness.machine(), "rows": rows})
    columns = [("dataset", "dataset"), ("ipc", "ipc"), ("seed", "seed"), ("outer steps", "steps"),
               ("inner steps", "inner_steps"), ("attention labels", "attention_labels"),
               ("dd-attn (minilm-ft)", lambda r: f"{r['dd_attn']} ± {r['dd_attn_std']}"),
               ("random real, same fine-tuning", lambda r: f"{r['random']} ± {r['random_std']}"),
               ("head on frozen encoder: summary / random", _cross("minilm-head")),
               ("TextCNN: summary / random", _cross("textcnn")), ("fine-tuned on real subset", _upper),
               ("learned lr", "learned_lr"), ("s / outer step", "s_per_outer_step"), ("distill s", "distill_s"),
               ("peak RSS MB", "peak_rss_mb"), ("load", "load_avg_1min")]
    lines = ["# dd-attn: CPU profile", "",
             "Generated by `benchmarks/text/dd_attn.py`. Accuracy (%) on the real test set, mean ± std over the "
             "evaluation models (fresh heads on a fresh copy of the pretrained all-MiniLM-L6-v2, fine-tuned on the "
             "summary with the native protocol: the inner steps, the learned lr, soft and attention labels). "
             "**random real**: random real sentences of the same budget, fine-tuned with the same steps and lr, "
             "hard labels. Cross-architecture columns (`--cross-arch`): the plain protocol's learners (a linear head "
             "on the frozen encoder; a TextCNN from scratch) on the summary and on the same random sentences. "
             "**fine-tuned on real subset** (`--upper-bound N`): the whole encoder fine-tuned on N real sentences "
             "per class by full-batch SGD, the CPU stand-in for full-data fine-tuning (its steps and lr in the row). "
             "2 CPU cores shared with other jobs (the load column), 1 torch thread: times are noisy.",
             "", *harness.md_table(columns, rows)]
    harness.write_markdown(RESULTS.with_suffix(".md"), lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="the text data folder (holding trec/, ag_news/, ...)")
    parser.add_argument("--dataset", default="trec", choices=sorted(SPECS))
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--lr-init", type=float, default=0.1)
    parser.add_argument("--models", type=int, default=5, help="evaluation models per summary")
    parser.add_argument("--no-attention", action="store_true", help="distill without attention labels")
    parser.add_argument("--set", action="append", help="another dd-attn option, KEY=JSON")
    parser.add_argument("--cross-arch", action="store_true", help="also evaluate with minilm-head and textcnn")
    parser.add_argument("--upper-bound", type=int, default=0, metavar="N",
                        help="also fine-tune the encoder on N real sentences per class (0: skip)")
    parser.add_argument("--upper-steps", type=int, default=100, help="full-batch SGD steps of --upper-bound")
    parser.add_argument("--upper-lr", type=float, default=0.01, help="SGD learning rate of --upper-bound")
    parser.add_argument("--upper-models", type=int, default=2, help="fine-tuned models of --upper-bound")
    args = parser.parse_args()
    harness.set_threads(1)
    rows = harness.load_json(RESULTS, {"rows": []})["rows"]
    for seed in args.seeds:
        row = run(args, seed)
        harness.merge_row(rows, row, KEYS)
        write(rows)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
