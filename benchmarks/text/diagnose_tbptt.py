"""Diagnostics behind the IMDB 1-per-class notes in results.md (why DD-text with the TextCNN learner stays at chance
there). Run from the repository root, one at a time, single-threaded::

    OMP_NUM_THREADS=1 python benchmarks/text/diagnose_tbptt.py limits "imdb?L=128&max_train=5000&max_test=2000" 0.02
    OMP_NUM_THREADS=1 python benchmarks/text/diagnose_tbptt.py limits "trec?L=32" 0.02
    OMP_NUM_THREADS=1 python benchmarks/text/diagnose_tbptt.py words       # hand-made sentiment-word summary, IMDB
    OMP_NUM_THREADS=1 python benchmarks/text/diagnose_tbptt.py soft-labels  # SST-2: soft labels vs embeddings (needs
                                                                          # the saved summaries of run.py)

``limits``: the TextCNN's feature statistics, the inner lr stability limit on one real sequence per class
(:func:`distill_text.methods.dd_text.inner_lr_limit`), the outer losses of 6 fresh inits after ``T`` inner steps and
the mean pairwise cosine of their summary gradients. ``words``: fresh TextCNNs trained on 15 negative vs 15 positive
sentiment words repeated to 128 tokens, with the plain protocol and with T full-batch SGD steps. ``soft-labels``: the
plain TextCNN on the SST-2 random sentences / meanpool-distilled embeddings with hard / learned soft labels.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import harness

IMDB = "imdb?L=128&max_train=5000&max_test=2000"
NEGATIVE = "awful worst terrible boring bad waste horrible poor stupid dull worse pathetic disappointing mess lame"
POSITIVE = ("great excellent wonderful best amazing beautiful perfect brilliant superb loved enjoyed fantastic "
            "favorite masterpiece touching")


def limits(spec: str, lr: float, inner_steps: int) -> None:
    from distill_core.objectives.unrolled import init_params, unrolled_sgd
    from distill_text import load_text_data
    from distill_text.methods.dd_text import inner_lr_limit, soft_cross_entropy
    from distill_text.models import TextCNN

    data = load_text_data(spec)
    y, k = data.y_train, data.num_classes
    dim = data.x_train.shape[-1] - 1
    gen = torch.Generator().manual_seed(1)
    idx = torch.stack([(y == c).nonzero()[3, 0] for c in range(k)])
    x_syn = data.x_train[idx].float().clone().requires_grad_(True)
    targets = torch.eye(k) * 0.9 + 0.1 / k
    torch.manual_seed(0)
    net = TextCNN(embed_dim=dim, num_classes=k, dropout=0.0)
    with torch.no_grad():
        feats = net.embed(data.x_train[:128].float())
    print(f"{spec}: squared feature norm {(feats ** 2).sum(1).mean():.0f}, cosine between two texts "
          f"{F.cosine_similarity(feats[:64], feats[64:]).mean():.3f}, inner lr limit on the summary "
          f"{inner_lr_limit(net, x_syn.detach(), k):.4f}")
    grads, losses = [], []
    for seed in range(6):
        torch.manual_seed(100 + seed)
        net = TextCNN(embed_dim=dim, num_classes=k, dropout=0.0)
        final = unrolled_sgd(net, init_params(net, reinit=False), x_syn, targets, steps=inner_steps, lr=lr,
                             loss_fn=soft_cross_entropy)
        real = torch.cat([(y == c).nonzero()[torch.randperm(int((y == c).sum()), generator=gen)[:32], 0]
                          for c in range(k)])
        loss = F.cross_entropy(functional_call(net, final, (data.x_train[real].float(),)), y[real])
        (grad,) = torch.autograd.grad(loss, x_syn)
        grads.append(grad[..., :-1].flatten())
        losses.append(round(loss.item(), 3))
    unit = F.normalize(torch.stack(grads), dim=1)
    cos = ((unit @ unit.T).sum() - len(grads)) / (len(grads) * (len(grads) - 1))
    print(f"  lr {lr}, T {inner_steps}: outer losses {losses}; mean pairwise gradient cosine {cos:.3f}")


def words() -> None:
    from distill_core import evaluate_summary, get_modality
    from distill_core.evaluation import EvalProtocol
    from distill_text import load_encoder, load_text_data
    from distill_text.modality import plain_protocol

    data = load_text_data(IMDB)
    encoder = load_encoder()
    length = data.sample_shape[0]

    def sequence(text: str) -> torch.Tensor:
        ids = encoder.tokenizer.convert_tokens_to_ids(text.split())
        ids = (ids * length)[:length]
        emb = encoder.embeddings[torch.tensor(ids)].float() / encoder.scale
        return torch.cat([emb, torch.ones(length, 1)], 1)

    modality = get_modality("text")
    y = data.y_train
    idx = torch.stack([(y == 0).nonzero()[0, 0], (y == 1).nonzero()[0, 0]])
    summary = modality.subset_summary(data, idx, label_kind="hard", learn_lr=False, lr_init=0.01)
    summary.x.data = torch.stack([sequence(NEGATIVE), sequence(POSITIVE)])
    print("plain TextCNN:", evaluate_summary(summary, data, modality=modality,
                                             protocol=plain_protocol("textcnn", n_models=3), seed=0))
    for lr, steps in ((0.01, 10), (0.01, 50), (0.005, 10)):
        protocol = EvalProtocol(model="textcnn", model_kwargs={"dropout": 0.0}, epochs=steps, lr=lr, momentum=0.0,
                                weight_decay=0.0, batch_size=2, schedule="constant", n_models=3)
        print(f"{steps} full-batch SGD steps at lr {lr}:",
              evaluate_summary(summary, data, modality=modality, protocol=protocol, seed=0))
    print("plain meanpool:", evaluate_summary(summary, data, modality=modality,
                                              protocol=plain_protocol("meanpool", n_models=2), seed=0))


def soft_labels(runs_dir: Path) -> None:
    from distill_core import evaluate_summary, get_modality, load_artifact
    from distill_text import load_text_data
    from distill_text.modality import plain_protocol

    modality = get_modality("text")
    data = load_text_data("sst2?L=48&max_train=10000")
    rnd = load_artifact(runs_dir / "sst2-ipc1-random").summary
    dd = load_artifact(runs_dir / "sst2-ipc1-dd-text").summary

    def score(summary):  # type: ignore[no-untyped-def]
        return evaluate_summary(summary, data, modality=modality, protocol=plain_protocol("textcnn"), seed=0)

    print("learned soft labels", dd.targets().detach().numpy().round(3).tolist())
    print("distilled embeddings, soft labels (as stored):", score(dd))
    x_dd = dd.x.data.clone()
    dd.x.data = rnd.x.detach().clone()
    print("random sentences, learned soft labels:", score(dd))
    dd.x.data = x_dd
    dd.label_kind = "hard"
    print("distilled embeddings, hard labels:", score(dd))
    print("random sentences, hard labels (the random cell):", score(rnd))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["limits", "words", "soft-labels"])
    parser.add_argument("spec", nargs="?", default=IMDB)
    parser.add_argument("lr", nargs="?", type=float, default=0.02)
    parser.add_argument("--inner-steps", type=int, default=10)
    parser.add_argument("--root", default=None, help="text data folder (default: $DISTILL_TEXT_ROOT, else "
                        "$DISTILL_DATA_ROOT/text)")
    parser.add_argument("--runs-dir", default="/tmp/distill-text-bench-runs")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    os.environ["DISTILL_TEXT_ROOT"] = harness.data_root(args.root, env="DISTILL_TEXT_ROOT", sub="text",
                                                        what="text datasets")
    if args.what == "limits":
        limits(args.spec, args.lr, args.inner_steps)
    elif args.what == "words":
        words()
    else:
        soft_labels(Path(args.runs_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
