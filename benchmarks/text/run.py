"""Text distillation benchmarks: DD-text, text-GM, text-DM and the random / herding / k-center baselines on SST-2,
TREC-6, AG News and IMDB at 1 and 10 sequences per class (and IMDB with 20 sequences in all), evaluated with
fresh TextCNNs (plain minibatch training, and for DD-text also its native protocol), plus the full-data accuracy
of the learners, the time per outer step and the peak memory of TBPTT against the truncation window k.

Cells run in priority order and the results are rewritten after every cell, so a cut run keeps what it finished;
``--resume`` skips finished cells; every cell records the machine's load average (``benchmarks/harness.py``).
Data: ``--root DIR`` (the text data folder), else ``DISTILL_TEXT_ROOT``, else ``$DISTILL_DATA_ROOT/text``.
``--results FILE`` writes another results file (its markdown beside it) and leaves the committed one alone. Run
from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/text/run.py --root DIR                             # all cells
    OMP_NUM_THREADS=1 python benchmarks/text/run.py --only trec:1 --methods dd-text,random   # a subset
    OMP_NUM_THREADS=1 python benchmarks/text/run.py --memory                              # TBPTT memory vs k, T
    OMP_NUM_THREADS=1 python benchmarks/text/run.py --reeval --only trec:1 --methods random,dd-text,dd-text-cnn
    # (re-evaluates saved summaries with the current TextCNN protocol; cells without one are re-run)
    OMP_NUM_THREADS=1 python benchmarks/text/run.py --only sst2:1 --methods dd-text-cnn \
        --set lr_summary=0.03 --set lr_labels=0.03 --set steps=350 --max-seconds 330   # as committed for SST-2

The IMDB diagnosis in the notes (inner lr stability limits, gradient cosines, a hand-made summary, soft labels vs
embeddings on SST-2) comes from ``benchmarks/text/diagnose_tbptt.py``.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import harness  # noqa: E402

RESULTS_JSON = HERE / "results.json"  # --results replaces it; the markdown is written beside it (.md)

# dataset specs: sequence length L and the seeded subsets (stated in every result)
SPECS = {
    "sst2": "sst2?L=48&max_train=10000",
    "trec": "trec?L=32",
    "ag_news": "ag_news?L=64",
    "imdb": "imdb?L=128&max_train=5000&max_test=2000",
}
# CPU-sized method settings (the method configs hold the paper defaults; these are the budgets used here)
METHOD_OVERRIDES: dict[str, dict[str, Any]] = {
    "dd-text": {"steps": 300, "learner": "meanpool", "inner_steps": 10, "lr_init": 3.0, "lr_summary": 0.01,
                "lr_labels": 0.01, "lr_lr": 0.001, "batch_real": 256},
    "text-gm": {"steps": 100, "model": "meanpool", "batch_real": 64, "lr_summary": 100.0},
    "text-dm": {"steps": 200, "model": "meanpool", "batch_real": 256, "lr_summary": 10.0},
    # DD-text with the TextCNN as inner learner (about 10x the cost per step): stopped by MAX_SECONDS
    "dd-text-cnn": {"steps": 200, "learner": "textcnn", "inner_steps": 10, "lr_init": 0.02, "lr_summary": 0.01,
                    "lr_labels": 0.01, "lr_lr": 0.001, "batch_real": 64},
    "random": {}, "herding": {}, "kcenter": {},
}
#: wall-clock cap on a method's outer loop (s), so that a cell fits the CPU budget; the steps done are recorded
MAX_SECONDS: dict[str, float] = {"dd-text-cnn": 360.0}
METHODS = ["dd-text", "random", "text-dm", "text-gm", "herding", "kcenter", "dd-text-cnn"]


def cells(sets: list[str], methods: list[str]) -> list[tuple[str, str, dict[str, int]]]:
    """All (dataset, method, budget) cells, the most important first: DD-text vs random at 1 per class."""
    out: list[tuple[str, str, dict[str, int]]] = []

    def add(ds: str, method: str, budget: dict[str, int]) -> None:
        if ds in sets and method in methods and (ds, method, budget) not in out:
            out.append((ds, method, budget))

    for ds in sets:
        for method in ("dd-text", "random"):
            add(ds, method, {"ipc": 1})
    for ds in sets:
        add(ds, "dd-text-cnn", {"ipc": 1})
    for method in ("dd-text", "random", "dd-text-cnn"):
        add("imdb", method, {"total": 20})
    for ds in sets:
        for method in ("text-dm", "text-gm", "herding", "kcenter"):
            add(ds, method, {"ipc": 1})
    for ds in sets:
        for method in METHODS[:6]:
            add(ds, method, {"ipc": 10})
    for method in METHODS[2:6]:
        add("imdb", method, {"total": 20})
    return out


def plain_protocol_epochs() -> int:
    from distill_text.modality import plain_protocol

    return plain_protocol("textcnn").epochs


def cell_key(ds: str, method: str, budget: dict[str, int]) -> str:
    size = f"ipc{budget['ipc']}" if "ipc" in budget else f"n{budget['total']}"
    return f"{ds}/{size}/{method}"


def load_results() -> dict[str, Any]:
    return harness.load_json(RESULTS_JSON, lambda: {"cells": {}, "full_data": {}, "memory": None, "machine": {}})


def save_results(results: dict[str, Any]) -> None:
    harness.save_json(RESULTS_JSON, results)
    render(results)


def render(results: dict[str, Any]) -> None:
    RESULTS_JSON.with_suffix(".md").write_text(render_markdown(results))


def _fmt(ev: dict[str, Any] | None) -> str:
    return "-" if not ev else f"{ev['accuracy_mean']:.1f} ± {ev['accuracy_std']:.1f}"


def _plain_text() -> str:
    from distill_text.modality import plain_protocol

    p = plain_protocol("textcnn")
    return (f"{p.epochs} epochs, SGD lr {p.lr:g} momentum {p.momentum:g}, wd {p.weight_decay:g}, batch "
            f"{p.batch_size}, lr x0.1 at half (chosen on a validation split: `select_protocol.py`, "
            "`protocol_selection.json`)")


def render_markdown(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    lines = [
        "# distill-text benchmarks",
        "",
        f"Machine: {m.get('cpu', '?')}, torch {m.get('torch', '?')}, {m.get('threads', '?')} thread(s); the 2 CPU "
        "cores were shared with four other engineers' jobs, so times are noisy. Generated by "
        "`benchmarks/text/run.py` (see its docstring for the commands).",
        "",
        "Data view: MiniLM-L6-v2 input token embeddings (/ their std), L tokens per text, mask channel. Specs: "
        + ", ".join(f"`{v}`" for v in SPECS.values())
        + " (max_train / max_test are seeded stratified subsets).",
        "",
        "Accuracy (%) on the real test set, mean ± std over the evaluation runs (fresh learners). **plain**: "
        f"TextCNN (Kim 2014) trained {_plain_text()}, no augmentation, labels as stored (soft for DD-text); "
        "cells whose TextCNN epochs column says 100 were measured with the earlier 100-epoch protocol (same "
        "otherwise) and were not re-evaluated. **native**: DD-text's own protocol (T full-batch SGD steps with "
        "the learned lr from fresh random inits, as in its inner loop). DD-text uses resampled learner "
        "initialisations every outer step (`init_mode=resample`), so it trains fresh models.",
        "",
    ]
    lines += harness.md_table([
        ("dataset", lambda kc: kc[0].split("/")[0]), ("budget", lambda kc: kc[0].split("/")[1]),
        ("method", lambda kc: kc[0].split("/")[2]), ("plain TextCNN", lambda kc: _fmt(kc[1].get("plain"))),
        ("TextCNN epochs", lambda kc: (kc[1].get("plain") or {}).get("protocol", {}).get("epochs", "-")),
        ("native", lambda kc: _fmt(kc[1].get("native"))),
        ("runs", lambda kc: len((kc[1].get("plain") or {}).get("accuracies", []))),
        ("distill steps", lambda kc: kc[1].get("steps", 0)),
        ("s / outer step", lambda kc: kc[1].get("s_per_step") or "-"),
        ("distill s", lambda kc: kc[1].get("distill_s", "-"))], _sorted_cells(results))
    head_cnn = _headline_cnn(results)
    if head_cnn:
        lines += ["", "## DD-text vs random real sentences, tested with fresh TextCNNs (the issue's headline)", "",
                  "Every column: fresh TextCNNs trained with the plain protocol above on the same budget. dd-text "
                  "distils with the meanpool learner in its inner loop, dd-text-cnn with the TextCNN; both resample "
                  "the learner initialisation every outer step (init_mode=resample), so every number here is for "
                  "freshly initialised learners. native = dd-text-cnn's own protocol (T=10 full-batch SGD steps "
                  "with its learned lr, fresh TextCNNs).", ""]
        lines += head_cnn
    head = _headline(results)
    if head:
        lines += ["", "## DD-text vs random real sentences with the meanpool learner", "",
                  "meanpool = the L2-normalised bag-of-embeddings learner (dd-text's inner learner), plain protocol "
                  "(100 epochs, SGD lr 1); native = DD-text's own protocol on that learner.", ""]
        lines += head
    cross = [(k, c) for k, c in _sorted_cells(results) if c.get("cross")]
    if cross:
        archs = sorted({a for _, c in cross for a in c["cross"]})
        lines += ["", "## Cross-architecture (plain protocol, same summaries)", ""]
        lines += harness.md_table([("cell", lambda kc: kc[0]),
                                   *((a, lambda kc, a=a: _fmt(kc[1]["cross"].get(a))) for a in archs)], cross)
    if results.get("full_data"):
        lines += ["", "## Full training data (upper bound)", ""]
        lines += harness.md_table([
            ("dataset", lambda kv: kv[0].split("/")[0]), ("learner", lambda kv: kv[0].split("/")[1]),
            ("accuracy", lambda kv: f"{kv[1]['accuracy']:.1f}"), ("protocol", lambda kv: kv[1]["protocol"])],
            results["full_data"].items())
    if results.get("memory"):
        mem = results["memory"]
        lines += ["", "## TBPTT cost: one DD-text outer step", "", mem.get("setting", ""), ""]
        lines += harness.md_table([("T (inner steps)", "T"), ("k (truncation)", "k"),
                                   ("peak extra memory MB", lambda r: f"{r['peak_mb']:.0f}"),
                                   ("s / outer step", lambda r: f"{r['step_s']:.2f}")], mem["rows"])
    if results.get("variants"):
        lines += ["", "## Settings tried and not kept (same cell, same evaluation)", ""]
        lines += harness.md_table([
            ("cell and change", lambda nv: nv[0]), ("plain TextCNN", lambda nv: _fmt(nv[1].get("plain"))),
            ("native", lambda nv: _fmt(nv[1].get("native"))), ("outer steps", lambda nv: nv[1].get("steps", "-")),
            ("final outer loss", lambda nv: "-" if nv[1].get("final_loss") is None else f"{nv[1]['final_loss']:.3f}")],
            results["variants"].items())
    if results.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {note}" for note in results["notes"]]
    if results.get("not_run"):
        lines += ["", "## Not run", ""] + [f"- {item}" for item in results["not_run"]]
    return "\n".join(lines) + "\n"


def _sorted_cells(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    order = {name: i for i, name in enumerate(SPECS)}
    sizes = {"ipc1": 0, "ipc10": 1, "n20": 2}
    methods = {name: i for i, name in enumerate(METHODS)}

    def rank(item: tuple[str, dict[str, Any]]) -> tuple[int, int, int]:
        ds, size, method = item[0].split("/")
        return order.get(ds, 9), sizes.get(size, 9), methods.get(method, 9)

    return sorted(results["cells"].items(), key=rank)


def _acc(cell: dict[str, Any] | None, where: str) -> float | None:
    if not cell:
        return None
    ev = cell.get(where) if where in ("plain", "native") else cell.get("cross", {}).get(where)
    return None if not ev else ev["accuracy_mean"]


def _gain(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a - b:+.1f}"


def _headline(results: dict[str, Any]) -> list[str]:
    """DD-text vs random with the meanpool learner (DD-text's default inner learner)."""
    cells = results["cells"]
    pairs = []  # (dataset, size, dd-text cell, random cell)
    for key, dd in _sorted_cells(results):
        ds, size, method = key.split("/")
        rnd = cells.get(f"{ds}/{size}/random")
        if method == "dd-text" and rnd is not None:
            pairs.append((ds, size, dd, rnd))
    if not pairs:
        return []
    return harness.md_table([
        ("dataset", lambda p: p[0]), ("budget", lambda p: p[1]), ("DD-text native", lambda p: _fmt(p[2].get("native"))),
        ("DD-text meanpool", lambda p: _fmt(p[2].get("cross", {}).get("meanpool"))),
        ("random meanpool", lambda p: _fmt(p[3].get("cross", {}).get("meanpool"))),
        ("gain", lambda p: _gain(_acc(p[2], "meanpool"), _acc(p[3], "meanpool")))], pairs)


def _headline_cnn(results: dict[str, Any]) -> list[str]:
    """DD-text (meanpool or TextCNN inner learner) vs random, all tested with fresh TextCNNs (plain protocol)."""
    cells = results["cells"]
    seen = set()
    groups = []  # (dataset, size, random, dd-text, dd-text-cnn)
    for key, _ in _sorted_cells(results):
        ds, size, _method = key.split("/")
        if (ds, size) in seen:
            continue
        seen.add((ds, size))
        rnd, dd, ddc = (cells.get(f"{ds}/{size}/{m}") for m in ("random", "dd-text", "dd-text-cnn"))
        if rnd is not None and (dd is not None or ddc is not None):
            groups.append((ds, size, rnd, dd, ddc))
    if not groups:
        return []

    def epochs(g: tuple[Any, ...]) -> str:
        found = {str((c or {}).get("plain", {}).get("protocol", {}).get("epochs", "-")) for c in g[2:] if c}
        return "/".join(sorted(found))

    return harness.md_table([
        ("dataset", lambda g: g[0]), ("budget", lambda g: g[1]), ("random", lambda g: _fmt(g[2].get("plain"))),
        ("dd-text", lambda g: _fmt((g[3] or {}).get("plain"))), ("gain", lambda g: _gain(_acc(g[3], "plain"),
                                                                                         _acc(g[2], "plain"))),
        ("dd-text-cnn", lambda g: _fmt((g[4] or {}).get("plain"))),
        ("gain", lambda g: _gain(_acc(g[4], "plain"), _acc(g[2], "plain"))),
        ("dd-text-cnn native", lambda g: _fmt((g[4] or {}).get("native"))), ("TextCNN epochs", epochs)], groups)


def run_cell(ds: str, method: str, budget: dict[str, int], data: Any, args: argparse.Namespace) -> dict[str, Any]:
    from distill_core import Budget, distill, evaluate_summary, get_modality
    from distill_text.modality import native_protocol, plain_protocol

    modality = get_modality("text")
    overrides = dict(METHOD_OVERRIDES[method])
    for item in args.set or []:  # recorded in the cell with the other overrides
        name_, _, value = item.partition("=")
        overrides[name_] = json.loads(value)
    if args.steps_scale != 1.0 and overrides.get("steps"):
        overrides["steps"] = max(1, int(overrides["steps"] * args.steps_scale))
    t0 = time.perf_counter()
    out_dir = Path(args.runs_dir) / cell_key(ds, method, budget).replace("/", "-") if args.runs_dir else None
    name = "dd-text" if method.startswith("dd-text") else method
    outcome = distill(name, dataset=SPECS[ds], budget=Budget(**budget), seed=args.seed, overrides=overrides,
                      evaluate=False, progress=args.progress, data=data, out_dir=out_dir, checkpoint_every=0,
                      max_seconds=args.max_seconds or MAX_SECONDS.get(method),
                      overwrite=True)  # a re-run cell replaces its own artifact
    distill_s = time.perf_counter() - t0
    summary = outcome.artifact.summary
    steps = outcome.run.steps
    cell: dict[str, Any] = {
        "dataset_spec": SPECS[ds], "method": method, "budget": budget, "total": summary.budget,
        "overrides": overrides, "steps": steps, "distill_s": round(distill_s, 1),
        "s_per_step": round(outcome.run.wall_s / steps, 3) if steps else None,
        "final_loss": outcome.run.losses[-1] if outcome.run.losses else None,
        "labels": summary.label_kind, "learned_lr": None if summary.lr is None else float(summary.lr.detach()),
        "seed": args.seed, "max_seconds": args.max_seconds or MAX_SECONDS.get(method),
        "init_mode": overrides.get("init_mode", "resample") if name == "dd-text" else None,
        **harness.machine_context(),
    }
    plain = evaluate_summary(summary, data, modality=modality, protocol=plain_protocol("textcnn", n_models=args.runs),
                             seed=args.seed)
    cell["plain"] = plain.to_dict()
    if summary.lr is not None and getattr(summary, "native_steps", None):
        native = evaluate_summary(summary, data, modality=modality,
                                  protocol=native_protocol(summary, n_models=args.runs), seed=args.seed)
        cell["native"] = native.to_dict()
    if args.cross:
        cell["cross"] = {}
        for arch in args.cross.split(","):
            res = evaluate_summary(summary, data, modality=modality,
                                   protocol=plain_protocol(arch, n_models=args.runs), seed=args.seed)
            cell["cross"][arch] = res.to_dict()
    logging.info("%s: plain %s native %s", cell_key(ds, method, budget), plain,
                 cell.get("native", {}).get("accuracy_mean"))
    return cell


def cross_only(key: str, ds: str, loaded: dict[str, Any], args: argparse.Namespace) -> None:
    """Evaluate a saved summary with more learners and merge the results into its cell."""
    from distill_core import evaluate_summary, get_modality, load_artifact
    from distill_text import load_text_data
    from distill_text.modality import plain_protocol

    path = Path(args.runs_dir) / key.replace("/", "-")
    if not (path / "manifest.json").is_file() or key not in load_results()["cells"]:
        logging.info("cross: %s has no saved summary; skipped", key)
        return
    if ds not in loaded:
        loaded.clear()
        gc.collect()
        loaded[ds] = load_text_data(SPECS[ds], progress=args.progress)
    summary = load_artifact(path).summary
    found = {}
    for arch in args.cross.split(","):
        res = evaluate_summary(summary, loaded[ds], modality=get_modality("text"),
                               protocol=plain_protocol(arch, n_models=args.runs), seed=args.seed)
        found[arch] = res.to_dict()
        logging.info("cross %s %s: %s", key, arch, res)
    results = load_results()
    results["cells"][key].setdefault("cross", {}).update(found)
    save_results(results)


def reeval(key: str, ds: str, loaded: dict[str, Any], args: argparse.Namespace) -> bool:
    """Re-evaluate a saved summary with the current plain TextCNN protocol and replace the cell's ``plain``
    result (the old one is kept as ``plain_previous``); False when the cell has no saved summary."""
    from distill_core import evaluate_summary, get_modality, load_artifact
    from distill_text import load_text_data
    from distill_text.modality import plain_protocol

    path = Path(args.runs_dir) / key.replace("/", "-")
    if not (path / "manifest.json").is_file() or key not in load_results()["cells"]:
        return False
    if ds not in loaded:
        loaded.clear()
        gc.collect()
        loaded[ds] = load_text_data(SPECS[ds], progress=args.progress)
    summary = load_artifact(path).summary
    res = evaluate_summary(summary, loaded[ds], modality=get_modality("text"),
                           protocol=plain_protocol("textcnn", n_models=args.runs), seed=args.seed)
    logging.info("reeval %s: %s", key, res)
    results = load_results()
    cell = results["cells"][key]
    cell.setdefault("plain_previous", cell.get("plain"))
    cell["plain"] = res.to_dict()
    save_results(results)
    return True


def full_data(ds: str, data: Any, learner: str, epochs: int) -> dict[str, Any]:
    """One learner trained on the whole (subset) training set: the upper bound."""
    from distill_core.evaluation import accuracy, train_classifier
    from distill_text.modality import PLAIN_LR, TextModality, plain_protocol

    torch.manual_seed(0)
    modality = TextModality()
    model = modality.build_model(learner, sample_shape=data.sample_shape, num_classes=data.num_classes)
    lr = PLAIN_LR[learner]
    protocol = plain_protocol(learner, epochs=epochs, batch_size=64, lr=lr)
    targets = torch.nn.functional.one_hot(data.y_train, data.num_classes).float()
    t0 = time.perf_counter()
    train_classifier(model, data.x_train, targets, label_kind="hard", protocol=protocol,
                     generator=torch.Generator().manual_seed(0))
    acc = accuracy(model, data.x_test, data.y_test)
    protocol_text = (f"{epochs} epochs, SGD lr {lr:g} momentum 0.9 wd 5e-4, batch 64, x0.1 at half; 1 run; "
                     f"{len(data.x_train)} training texts")
    return {"accuracy": acc, "protocol": protocol_text, "wall_s": round(time.perf_counter() - t0, 1)}


def memory_probe(T: int, k: int, n_syn: int, length: int) -> dict[str, float]:
    """Peak RSS growth of one DD-text outer step (TextCNN learner, random embeddings) in this process."""
    import torch.nn.functional as F
    from torch.func import functional_call

    from distill_core.objectives.unrolled import init_params, unrolled_sgd
    from distill_text.methods.dd_text import soft_cross_entropy
    from distill_text.models import TextCNN

    torch.manual_seed(0)
    d = 384
    x_syn = torch.randn(n_syn, length, d + 1)
    x_syn[..., -1] = 1.0
    x_syn.requires_grad_(True)
    targets = F.one_hot(torch.arange(n_syn) % 2, 2).float()
    x_real = torch.randn(256, length, d + 1)
    x_real[..., -1] = 1.0
    y_real = torch.arange(256) % 2
    net = TextCNN(embed_dim=d, num_classes=2, dropout=0.0)
    with torch.no_grad():
        net(x_real)
    base = harness.peak_rss_mb()
    t0 = time.perf_counter()
    final = unrolled_sgd(net, init_params(net, reinit=False), x_syn, targets, steps=T, lr=0.05,
                         loss_fn=soft_cross_entropy, truncate=k)
    F.cross_entropy(functional_call(net, final, (x_real,)), y_real).backward()
    step_s = time.perf_counter() - t0
    return {"T": T, "k": k, "peak_mb": harness.peak_rss_mb() - base, "step_s": step_s, **harness.machine_context()}


def run_memory(results: dict[str, Any]) -> None:
    rows = []
    n_syn, length = 20, 128
    for T, k in ((10, 1), (10, 5), (10, 10), (20, 5), (40, 5)):
        rows.append(harness.run_cell(__file__, "--memory-probe", T, k, n_syn, length))
        logging.info("memory T=%d k=%d: %s", T, k, rows[-1])
    results["memory"] = {
        "setting": f"TextCNN learner (widths 3/4/5 x 100), {n_syn} synthetic sequences of L={length} x 384, real "
                   "batch 256, one process per row; peak = growth of the process's peak RSS during one outer step "
                   "(forward T inner steps, backward through the last k).",
        "rows": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="text data folder (default: $DISTILL_TEXT_ROOT, else "
                        "$DISTILL_DATA_ROOT/text)")
    parser.add_argument("--results", type=Path, default=HERE / "results.json",
                        help="results JSON to read and write (its markdown beside it); default: next to this script")
    parser.add_argument("--sets", default="trec,sst2,ag_news,imdb")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--only", help="comma list of DATASET:IPC or DATASET:nTOTAL cells, e.g. trec:1,imdb:n20")
    parser.add_argument("--runs", type=int, default=5, help="fresh learners per evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiply every method's outer steps")
    parser.add_argument("--cross", default="", help="extra learners (plain protocol), e.g. meanpool,transformer")
    parser.add_argument("--full", action="store_true", help="only train the learners on the full training data")
    parser.add_argument("--full-epochs", type=int, default=5)
    parser.add_argument("--memory", action="store_true", help="measure TBPTT memory vs k and T, then exit")
    parser.add_argument("--memory-probe", nargs=4, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--resume", action="store_true", help="skip cells already in results.json")
    parser.add_argument("--render", action="store_true", help="only rewrite results.md from results.json")
    parser.add_argument("--runs-dir", default="/tmp/distill-text-bench-runs",
                        help="where the summaries are saved (outside the repository); '' to skip")
    parser.add_argument("--cross-only", action="store_true",
                        help="evaluate the saved summaries of the selected cells with the --cross learners")
    parser.add_argument("--reeval", action="store_true",
                        help="re-evaluate the saved summaries of the selected cells with the current plain TextCNN "
                             "protocol (cells without a saved summary are re-run)")
    parser.add_argument("--set", action="append", metavar="KEY=JSON",
                        help="override a method setting for the selected cells (recorded in the cell), e.g. "
                             "--set lr_summary=0.05")
    parser.add_argument("--max-seconds", type=float, help="cap on the outer loop's wall time (s) for these cells")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.memory_probe:
        harness.emit(memory_probe(*args.memory_probe))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    global RESULTS_JSON
    RESULTS_JSON = args.results
    results = load_results()
    if args.render:
        render(results)  # the JSON stays as it is
        return 0
    results["machine"] = {**harness.machine(), "threads": torch.get_num_threads()}
    if args.memory:
        run_memory(results)
        save_results(results)
        return 0
    os.environ["DISTILL_TEXT_ROOT"] = harness.data_root(args.root, env="DISTILL_TEXT_ROOT", sub="text",
                                                        what="text datasets")
    from distill_text import load_text_data

    sets = args.sets.split(",")
    todo = cells(sets, args.methods.split(","))
    if args.only:
        wanted = set()
        for item in args.only.split(","):
            ds, size = item.split(":")
            wanted.add((ds, f"ipc{size}" if not size.startswith("n") else size))
        todo = [c for c in todo if (c[0], cell_key(*c).split("/")[1]) in wanted]
    if args.full:
        for ds in sets:
            data = load_text_data(SPECS[ds], progress=args.progress)
            for learner in ("meanpool", "textcnn"):
                fkey = f"{ds}/{learner}"
                if fkey not in results["full_data"]:
                    epochs = args.full_epochs * (3 if learner == "meanpool" else 1)  # the linear model is cheap
                    results["full_data"][fkey] = full_data(ds, data, learner, epochs=epochs)
                    logging.info("full data %s: %s", fkey, results["full_data"][fkey])
                    results = {**load_results(), "full_data": {**load_results().get("full_data", {}),
                                                               fkey: results["full_data"][fkey]}}
                    save_results(results)
            del data
            gc.collect()
        return 0
    loaded: dict[str, Any] = {}
    for ds, method, budget in todo:
        key = cell_key(ds, method, budget)
        if args.cross_only:
            cross_only(key, ds, loaded, args)
            continue
        if args.reeval:
            done = results["cells"].get(key, {}).get("plain", {}).get("protocol", {})
            if done.get("epochs") == plain_protocol_epochs():
                continue
            if reeval(key, ds, loaded, args):
                results = load_results()
                continue
        elif args.resume and key in results["cells"]:
            continue
        if ds not in loaded:
            loaded.clear()
            gc.collect()
            loaded[ds] = load_text_data(SPECS[ds], progress=args.progress)
        logging.info("cell %s", key)
        cell = run_cell(ds, method, budget, loaded[ds], args)
        results = load_results()
        results["cells"][key] = cell
        save_results(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
