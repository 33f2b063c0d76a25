"""The text modality: datasets, learners, protocols, coreset features, rendering and export for the core."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distill_core.data import RealData
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.evaluation import EvalProtocol, accuracy, train_classifier
from distill_core.modality import Modality, ModelFit, SummaryInfo
from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary

from .data import NAMED_SETS, load_text_data, parse_spec, starts_like_interactions
from .models import EncoderClassifier, FrozenEncoderHead, MeanPoolLinear, TextCNN, TransformerClassifier, split_mask
from .summary import TextSummary

__all__ = ["PLAIN_EPOCHS", "PLAIN_LR", "TextModality", "native_protocol", "plain_protocol"]

logger = logging.getLogger(__name__)
MODELS = ("textcnn", "transformer", "meanpool", "minilm-head", "minilm-ft")
_FEATURE_CACHE: dict[tuple[str, int, str], Tensor] = {}


#: per-learner learning rates of the plain protocol (the normalised bag-of-embeddings model needs a large one)
PLAIN_LR = {"textcnn": 0.01, "transformer": 0.01, "meanpool": 1.0, "minilm-head": 0.01, "minilm-ft": 0.01}
#: per-learner epochs of the plain protocol. TextCNN: 300, chosen on a validation split of TREC-6 (1,000 held-out
#: training texts; benchmarks/text/protocol_selection.json): over lr {0.01, 0.03} x epochs {100, 300}, lr 0.01 with
#: 300 epochs scored best for random real sentences at 1 per class (23.1% vs 19.7% at 100 epochs) and for a DD-text
#: summary (37.1% vs 28.3%); on a summary of a few sequences one epoch is one SGD step, so 100 epochs undertrain.
PLAIN_EPOCHS = {"textcnn": 300, "transformer": 100, "meanpool": 100, "minilm-head": 100, "minilm-ft": 100}


def plain_protocol(model: str = "textcnn", **changes: Any) -> EvalProtocol:
    """Plain minibatch training of fresh learners (the DC/DM papers' evaluation shape, shorter), with the learner's
    learning rate from :data:`PLAIN_LR` and epochs from :data:`PLAIN_EPOCHS`."""
    base = EvalProtocol(model=model, epochs=PLAIN_EPOCHS.get(model, 100), lr=PLAIN_LR.get(model, 0.01), momentum=0.9,
                        weight_decay=5e-4, batch_size=256, schedule="step_half", n_models=5)
    return base.with_(**changes)


def native_protocol(summary: TextSummary, **changes: Any) -> EvalProtocol:
    """DD's native protocol: ``T`` full-batch SGD steps (no momentum, no weight decay) with the learned inner
    learning rate, on the learner the summary was distilled for, as in the inner loop (lesson 12). The stored
    ``lr`` is the learned value too, so a baseline without a learned lr evaluated with this protocol (``distill run
    --compare-random``) trains with the same steps and rate. A summary distilled with a fixed inner lr carries it as
    ``native_kwargs["lr"]`` (dd-attn with ``learn_lr=false``)."""
    kwargs = dict(summary.native_kwargs)
    fixed_lr = float(kwargs.pop("lr", 0.01))
    lr = float(summary.lr.detach()) if summary.lr is not None else fixed_lr
    base = EvalProtocol(model=summary.native_model or "textcnn", model_kwargs=kwargs,
                        epochs=int(summary.native_steps or 10), lr=lr, momentum=0.0, weight_decay=0.0,
                        batch_size=max(1, summary.budget), schedule="constant", n_models=5, use_learned_lr=True)
    return base.with_(**changes)


class TextModality(Modality):
    """Text classification in the token-embedding view (see :mod:`distill_text.data`)."""

    name: ClassVar[str] = "text"

    # -- data ---------------------------------------------------------------------------------------------------
    def dataset_names(self) -> list[str]:
        return sorted(NAMED_SETS)

    def claims(self, spec: str) -> bool:
        """The named sets, ``jsonl:`` paths and ``csv:`` paths, except a CSV file that starts like recommender
        interactions (the header ``user,item[,rating]`` or a header-less row of integer ids, which distill-recsys
        reads; a text CSV always starts with a header naming ``text`` and ``label``). A missing or unreadable
        file is claimed: the loader then says what is wrong with it. Never raises."""
        try:
            base = spec.partition("?")[0]
            if base in NAMED_SETS or base.startswith("jsonl:"):
                return True
            return base.startswith("csv:") and not starts_like_interactions(base[len("csv:"):])
        except Exception:  # a claim is a yes/no question; the loader reports what is wrong with the spec
            return spec.startswith(("jsonl:", "csv:"))

    def load_dataset(self, spec: str, *, root: str | None = None,
                     preprocessing: Preprocessing | None = None) -> RealData:
        if not self.claims(spec):
            raise UnknownNameError("text dataset", spec, [*self.dataset_names(), "jsonl:PATH", "csv:PATH"])
        if preprocessing is not None and preprocessing.kinds:
            raise DataValidationError(f"text summaries use no preprocessing, but {preprocessing.kinds} was given")
        return load_text_data(spec, root=root)

    # -- models -------------------------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        return list(MODELS)

    def build_model(self, name: str, *, sample_shape: tuple[int, ...], num_classes: int, **kwargs: Any) -> nn.Module:
        """A learner over ``(L, d + 1)`` sequences.

        Args:
            name: ``textcnn``, ``transformer``, ``meanpool`` or ``minilm-head``.
            sample_shape: ``(L, d + 1)``.
            num_classes: number of classes.
            **kwargs: the learner's options; ``init_seed`` fixes its initialisation (DD's fixed-init setting);
                ``minilm-head`` and ``minilm-ft`` need ``model_path`` and ``embed_scale``.
        """
        if len(sample_shape) != 2:
            raise DataValidationError(f"text samples must be (L, d + 1), got {sample_shape}")
        length, dim = int(sample_shape[0]), int(sample_shape[1]) - 1
        kwargs = dict(kwargs)
        init_seed = kwargs.pop("init_seed", None)
        with torch.random.fork_rng(devices=[], enabled=init_seed is not None):
            if init_seed is not None:
                torch.manual_seed(int(init_seed))
            if name == "textcnn":
                return TextCNN(embed_dim=dim, num_classes=num_classes, **kwargs)
            if name == "transformer":
                return TransformerClassifier(embed_dim=dim, num_classes=num_classes, max_len=length, **kwargs)
            if name == "meanpool":
                kwargs.pop("dropout", None)
                return MeanPoolLinear(embed_dim=dim, num_classes=num_classes)
            if name == "minilm-head":
                kwargs.pop("dropout", None)
                return FrozenEncoderHead(num_classes=num_classes, **kwargs)
            if name == "minilm-ft":
                kwargs.pop("dropout", None)
                return EncoderClassifier(num_classes=num_classes, max_len=length, **kwargs)
        raise UnknownNameError("model", name, MODELS)

    def default_protocol(self, dataset: dict[str, Any], summary: Summary) -> EvalProtocol:
        if isinstance(summary, TextSummary) and summary.native_steps and (
                summary.lr is not None or "lr" in summary.native_kwargs):
            return native_protocol(summary)
        return plain_protocol()

    def train_and_test(self, summary: Summary, data: RealData, fit: ModelFit) -> float:
        """Train one fresh learner on the summary; ``minilm-head`` trains only the linear head on the frozen
        encoder's features (computed once per summary and test set); ``minilm-ft`` fine-tunes a fresh copy of the
        pretrained encoder as dd-attn's inner loop does (:func:`~distill_text.methods.dd_attn.finetuned_accuracy`:
        full-batch SGD for ``epochs`` steps, with the summary's attention labels when it has them)."""
        want = data.extra.get("model_id")
        have = getattr(summary, "model_id", "")
        if want and have and want != have:
            raise DataValidationError(
                f"the summary lives in the embeddings of model {getattr(summary, 'model', '?')} (id {have}) but the "
                f"test data was embedded with {data.extra.get('model')} (id {want}); load the data with the "
                "artifact's dataset spec (`distill eval DIR` does this)")
        if fit.protocol.model == "minilm-ft":
            from .methods.dd_attn import finetuned_accuracy

            return finetuned_accuracy(summary, data, fit)
        if fit.protocol.model != "minilm-head":
            return super().train_and_test(summary, data, fit)
        device = fit.device
        kwargs = {"model_path": data.extra["model_path"], "embed_scale": data.extra["embed_scale"],
                  **fit.protocol.model_kwargs}
        head = self.build_model("minilm-head", sample_shape=data.sample_shape, num_classes=data.num_classes,
                                **kwargs).to(device)
        x_syn, targets = (t.to(device) for t in summary.materialize())
        key = (data.name, len(data.x_test), str(data.extra.get("model_id")))
        if key not in _FEATURE_CACHE:
            _FEATURE_CACHE.clear()
            _FEATURE_CACHE[key] = head.embed(data.x_test.to(device)).cpu()
        f_test = _FEATURE_CACHE[key].to(device)
        f_syn = head.embed(x_syn)
        train_classifier(head.fc, f_syn, targets, label_kind=summary.label_kind, protocol=fit.protocol, lr=fit.lr,
                         generator=fit.generator)
        return accuracy(head.fc, f_test, data.y_test.to(device))

    # -- coresets -----------------------------------------------------------------------------------------------
    def features(self, data: RealData, indices: Tensor, *, seed: int) -> Tensor:
        """Masked mean of the token embeddings ``(n, d)`` (a bag-of-embeddings sentence vector)."""
        emb, mask = split_mask(data.x_train[indices], torch.float32)
        return emb.sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)

    def subset_summary(self, data: RealData, indices: Tensor, **kwargs: Any) -> Summary:
        return TextSummary(x=data.x_train[indices].float(), labels=data.y_train[indices],
                           num_classes=data.num_classes, preprocessing=data.preprocessing,
                           model=str(data.extra.get("model", "")), model_id=str(data.extra.get("model_id", "")),
                           max_len=int(data.extra.get("L", data.sample_shape[0])),
                           embed_scale=float(data.extra.get("embed_scale", 1.0)), **kwargs)

    # -- display ------------------------------------------------------------------------------------------------
    def render_suffix(self) -> str:
        return ".txt"

    def nearest_tokens(self, summary: Summary, info: SummaryInfo) -> list[dict[str, Any]]:
        """Per synthetic sequence: its class, label distribution and the nearest vocabulary token (cosine) at
        every unmasked position."""
        from .encoder import load_encoder

        model = getattr(summary, "model", "") or None
        encoder = load_encoder(model)
        if getattr(summary, "model_id", "") and summary.model_id != encoder.model_id:  # type: ignore[attr-defined]
            raise DataValidationError(f"the summary was distilled in the embeddings of {model} but the model found "
                                      f"there has another embedding table; reinstall or point to the same model")
        table = F.normalize(encoder.embeddings, dim=-1)
        names = info.class_names or [str(c) for c in range(summary.num_classes)]
        targets = summary.targets().detach()
        rows = []
        with torch.no_grad():
            for i in range(summary.budget):
                emb, mask = split_mask(summary.x[i: i + 1].detach(), torch.float32)
                keep = mask[0] > 0.5
                sims = F.normalize(emb[0][keep], dim=-1) @ table.T
                best = sims.max(-1)
                ids = best.indices.tolist()
                tokens = encoder.tokenizer.convert_ids_to_tokens(ids)
                words = [t for t in tokens if t not in encoder.tokenizer.all_special_tokens]
                rows.append({
                    "index": i,
                    "label": int(summary.labels[i]),
                    "class_name": names[int(summary.labels[i])],
                    "soft_label": [round(float(v), 4) for v in targets[i]],
                    "tokens": tokens,
                    "text": encoder.tokenizer.convert_tokens_to_string(words),
                    "cosine": [round(float(v), 3) for v in best.values],
                    "length": int(keep.sum()),
                })
        return rows

    def render(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """Write the nearest vocabulary tokens of every synthetic sequence, with its (soft) label, to ``path``."""
        rows = self.nearest_tokens(summary, info)
        names = info.class_names
        lines = [f"# {info.method} summary of {info.dataset.get('name')}: {len(rows)} sequences, "
                 f"L={getattr(summary, 'max_len', '?')}, model {getattr(summary, 'model', '?')}",
                 "# each line: class | label distribution | nearest vocabulary token (cosine) per position", ""]
        for row in rows:
            dist = ", ".join(f"{names[c] if c < len(names) else c}={p:.2f}" for c, p in enumerate(row["soft_label"]))
            mean_cos = sum(row["cosine"]) / max(1, len(row["cosine"]))
            lines.append(f"[{row['index']}] {row['class_name']} | {dist} | mean cos {mean_cos:.2f} | "
                         f"{' '.join(row['tokens'])}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def export(self, summary: Summary, info: SummaryInfo, path: Path) -> Path:
        """Write one JSON object per synthetic sequence (class, soft label, nearest tokens, text) to ``path``."""
        rows = self.nearest_tokens(summary, info)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return path

    @staticmethod
    def spec_options(spec: str) -> dict[str, Any]:
        """The options given in a dataset spec (``L``, ``model``, ``max_train``, ...)."""
        return dict(parse_spec(spec).options)
