"""Choose the TextCNN plain-protocol learning rate and epochs on a validation split (never the test set).

For each dataset, up to 1,000 stratified training texts (seed 1; at most a fifth of a class) are held out as
validation; random real summaries (1 per class, three draws, and 10 per class, one draw) are drawn from the
remaining texts, and saved DD-text summaries
(``--runs-dir``, distilled on the whole training split, so their validation score is optimistic) are added when
present. Every (lr, epochs) pair of the grid trains 3 fresh TextCNNs per summary (SGD momentum 0.9, wd 5e-4,
batch 256, lr x0.1 at half) and is scored by validation accuracy. Writes ``protocol_selection.json``::

    OMP_NUM_THREADS=1 python benchmarks/text/select_protocol.py --sets trec,sst2,ag_news
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import harness  # noqa: E402
from run import SPECS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=None, help="text data folder (default: $DISTILL_TEXT_ROOT, else "
                        "$DISTILL_DATA_ROOT/text)")
    parser.add_argument("--sets", default="trec,sst2,ag_news")
    parser.add_argument("--lrs", default="0.01,0.03,0.1")
    parser.add_argument("--epochs", default="100,300")
    parser.add_argument("--runs-dir", default="/tmp/distill-text-bench-runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ["DISTILL_TEXT_ROOT"] = harness.data_root(args.root, env="DISTILL_TEXT_ROOT", sub="text",
                                                        what="text datasets")
    from distill_core import Budget, evaluate_summary, get_modality, load_artifact
    from distill_core.data import ClassIndex, hold_out_validation
    from distill_text import load_text_data
    from distill_text.modality import plain_protocol

    modality = get_modality("text")
    out_path = HERE / "protocol_selection.json"
    out = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for ds in args.sets.split(","):
        # the validation texts as the test split (at most a fifth of a class: TREC's smallest classes)
        data = hold_out_validation(load_text_data(SPECS[ds]), n_val=1000, seed=1, max_fraction=0.2)[1]
        summaries = {}
        for ipc, draws in ((1, 3), (10, 1)):
            for draw in range(draws):
                g = torch.Generator().manual_seed(100 + draw)
                idx = ClassIndex(data.y_train, data.num_classes).sample_sizes(Budget(ipc=ipc).per_class(data),
                                                                            generator=g)
                summaries[f"random-ipc{ipc}-{draw}"] = modality.subset_summary(data, idx, label_kind="hard",
                                                                               learn_lr=False, lr_init=0.01)
        for size in ("ipc1", "ipc10"):
            path = Path(args.runs_dir) / f"{ds}-{size}-dd-text"
            if (path / "manifest.json").is_file():
                summaries[f"dd-text-{size}"] = load_artifact(path).summary
        rows = {}
        for lr in map(float, args.lrs.split(",")):
            for epochs in map(int, args.epochs.split(",")):
                t0 = time.perf_counter()
                accs = {}
                for name, summary in summaries.items():
                    res = evaluate_summary(summary, data, modality=modality, seed=0,
                                           protocol=plain_protocol("textcnn", n_models=3, lr=lr, epochs=epochs))
                    accs[name] = round(res.mean, 2) if hasattr(res, "mean") else round(
                        sum(res.accuracies) / len(res.accuracies), 2)
                rows[f"lr={lr:g},epochs={epochs}"] = {"val": accs, "wall_s": round(time.perf_counter() - t0, 1)}
                logging.info("%s lr %g epochs %d: %s", ds, lr, epochs, accs)
                out[ds] = {"n_val": len(data.y_test), "grid": rows}
                out_path.write_text(json.dumps(out, indent=1) + "\n")  # after every grid point
    return 0


if __name__ == "__main__":
    sys.exit(main())
