"""Test helpers shipped with the library: a tiny seeded two-class text set written as JSON lines."""

from __future__ import annotations

import json
import random
from pathlib import Path

__all__ = ["NEGATIVE", "NEUTRAL", "POSITIVE", "make_sentences", "write_jsonl", "write_toy_dataset"]

POSITIVE = ["great", "wonderful", "excellent", "superb", "delightful", "brilliant", "lovely", "fantastic"]
NEGATIVE = ["terrible", "awful", "horrible", "dreadful", "boring", "dull", "bad", "disappointing"]
NEUTRAL = ["the", "film", "movie", "plot", "actor", "scene", "story", "was", "a", "it", "this", "and", "music",
           "ending", "cast", "script", "camera", "director", "long", "old", "city", "night", "car", "house"]


def make_sentences(n_per_class: int, seed: int, *, length: int = 10) -> list[dict[str, object]]:
    """Rows ``{"text", "label"}``: neutral filler words with one or two sentiment words of the row's class
    (labels ``"neg"`` / ``"pos"``), seeded and shuffled."""
    rng = random.Random(seed)
    rows = []
    for label, vocab in (("neg", NEGATIVE), ("pos", POSITIVE)):
        for _ in range(n_per_class):
            words = [rng.choice(NEUTRAL) for _ in range(length)]
            for _ in range(rng.randint(1, 2)):
                words.insert(rng.randrange(len(words)), rng.choice(vocab))
            rows.append({"text": " ".join(words), "label": label})
    rng.shuffle(rows)
    return rows


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write ``rows`` as JSON lines to ``path``."""
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_toy_dataset(folder: Path, *, n_train: int = 30, n_test: int = 20, seed: int = 0) -> Path:
    """``folder/train.jsonl`` and ``folder/test.jsonl`` of the toy set; returns the train file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "test.jsonl", make_sentences(n_test, seed + 1))
    return write_jsonl(folder / "train.jsonl", make_sentences(n_train, seed))
