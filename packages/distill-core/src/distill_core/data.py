"""Real labelled data as the distillers see it, and its validation.

Every loader of every modality returns a :class:`RealData`; :func:`validate_real_data` runs before any compute so
that a custom dataset fails up front with the fix in the message , not deep inside a forward pass.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from .errors import DataValidationError
from .preprocessing import Preprocessing

__all__ = ["Budget", "ClassIndex", "RealData", "apportion", "data_fingerprint", "hold_out_validation", "subsample_test",
           "tensor_digest", "validate_budget", "validate_real_data"]


@dataclass
class RealData:
    """A labelled train/test split, already preprocessed with ``preprocessing`` (fitted on the train split).

    Args:
        name: dataset name as given on the command line (``"digits"``, ``"npz:/path"``).
        x_train: training samples ``(N, *sample_shape)``.
        y_train: integer labels ``(N,)`` in ``[0, num_classes)``.
        x_test: test samples ``(M, *sample_shape)``.
        y_test: integer labels ``(M,)``.
        num_classes: number of classes.
        class_names: one name per class.
        preprocessing: the fitted preprocessing already applied to ``x_train`` and ``x_test``.
        extra: modality-specific metadata (e.g. graph structure), stored as-is in the manifest when JSON-able.
    """

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.class_names:
            self.class_names = [str(c) for c in range(self.num_classes)]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def class_counts(self) -> list[int]:
        return torch.bincount(self.y_train, minlength=self.num_classes).tolist()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "sample_shape": list(self.sample_shape),
            "n_train": len(self.x_train),
            "n_test": len(self.x_test),
        }

    def to(self, device: torch.device | str) -> RealData:
        return RealData(self.name, self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                        self.y_test.to(device), self.num_classes, self.class_names, self.preprocessing, self.extra)


def tensor_digest(*tensors: Tensor) -> str:
    """A content hash (BLAKE2b, 128 bit) of tensors' dtypes, shapes and values (sparse ones by indices and values)."""
    digest = hashlib.blake2b(digest_size=16)
    for t in tensors:
        t = t.detach().cpu()
        if t.is_sparse:
            t = t.coalesce()
            parts = [t.indices(), t.values()]
        elif t.layout != torch.strided:  # CSR and friends
            t = t.to_sparse_coo().coalesce()
            parts = [t.indices(), t.values()]
        else:
            parts = [t]
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        for part in parts:
            digest.update(part.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                          if part.numel() else b"")
    return digest.hexdigest()


def data_fingerprint(data: RealData) -> dict[str, Any]:
    """What identifies the training data of a run: its name, shapes, classes and a content hash of the training
    split. A checkpoint stores it, and resuming on other data is refused.

    Data types that are not :class:`RealData` (recommender interaction matrices) supply their own
    ``fingerprint()`` with the same meaning.
    """
    custom = getattr(data, "fingerprint", None)
    if callable(custom):
        return dict(custom())
    return {"name": data.name, "n_train": len(data.y_train), "sample_shape": list(data.sample_shape),
            "num_classes": data.num_classes, "train_sha": tensor_digest(data.x_train, data.y_train)}


def hold_out_validation(data: RealData, *, n_val: int, seed: int,
                        max_fraction: float = 0.5) -> tuple[RealData, RealData]:
    """A validation split carved out of the training samples, for any selection (a step, a learning rate, a stop):
    never the test set.

    ``n_val // num_classes`` training samples per class (at most ``max_fraction`` of the class, rounded down) are
    held out, drawn per class in class order from one generator seeded with ``seed``.

    Returns:
        ``(train, val)``: ``train`` is ``data`` without the held-out samples (what distillation sees); ``val`` is
        ``data`` with the held-out samples as its test split (what the selection scores on). Neither holds the
        test set's samples in training, and ``train``'s test split is the untouched test set.

    Raises:
        DataValidationError: ``n_val`` below the number of classes, ``max_fraction`` outside (0, 1), or a class
            too small to hold out one sample.
    """
    if n_val < data.num_classes:
        raise DataValidationError(f"a validation split of n_val={n_val} holds no sample of some of the "
                                  f"{data.num_classes} classes; pass n_val >= {data.num_classes}")
    if not 0.0 < max_fraction < 1.0:
        raise DataValidationError(f"max_fraction={max_fraction} must lie in (0, 1): the share of a class that "
                                  "may be held out")
    generator = torch.Generator().manual_seed(seed)
    per_class = n_val // data.num_classes
    held = []
    for c in range(data.num_classes):
        idx = torch.nonzero(data.y_train == c).flatten()
        take = min(per_class, int(len(idx) * max_fraction))
        if take < 1:
            raise DataValidationError(f"class {c} has {len(idx)} training sample(s): too few to hold out one for "
                                      f"validation at max_fraction={max_fraction}")
        held.append(idx[torch.randperm(len(idx), generator=generator)[:take]])
    val_idx = torch.cat(held)
    keep = torch.ones(len(data.y_train), dtype=torch.bool)
    keep[val_idx] = False
    train = replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep])
    val = replace(data, x_train=data.x_train[keep], y_train=data.y_train[keep], x_test=data.x_train[val_idx],
                  y_test=data.y_train[val_idx])
    return train, val


def subsample_test(data: RealData, per_class: int | None, *, seed: int) -> RealData:
    """``data`` tested on at most ``per_class`` seeded random test samples of every class (all when ``None``), for
    protocols that test many models (architecture search, FedAvg's rounds) where CPU time forbids the whole test
    set each time; the training split is untouched. Results made with it must say so.

    Raises:
        DataValidationError: ``per_class`` below 1.
    """
    if per_class is None:
        return data
    if not isinstance(per_class, int) or per_class < 1:
        raise DataValidationError(f"test_per_class must be an integer >= 1, got {per_class!r}")
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(data.num_classes):
        idx = torch.nonzero(data.y_test == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    idx = torch.cat(keep).sort().values
    return replace(data, x_test=data.x_test[idx], y_test=data.y_test[idx], extra=dict(data.extra))


def validate_real_data(data: RealData) -> RealData:
    """Check shapes, label ranges, finiteness and class coverage; raise :class:`DataValidationError` naming the fix."""
    name = data.name
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if x.dim() < 2:
            raise DataValidationError(f"{name}: x_{split} must be (N, ...) samples, got shape {tuple(x.shape)}")
        if y.dim() != 1:
            raise DataValidationError(f"{name}: y_{split} must be a 1-D vector of integer labels, got shape "
                                      f"{tuple(y.shape)}; pass class indices, not one-hot rows")
        if len(x) != len(y):
            raise DataValidationError(f"{name}: x_{split} has {len(x)} samples but y_{split} has {len(y)} labels")
        if len(x) == 0:
            raise DataValidationError(f"{name}: the {split} split is empty")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise DataValidationError(f"{name}: y_{split} must hold integer class indices, got dtype {y.dtype}")
        if x.is_floating_point() and x.dtype != torch.float32:
            # summaries and models are float32: anything else fails later inside a matmul with a dtype mismatch
            raise DataValidationError(f"{name}: x_{split} has dtype {x.dtype} but distill works in float32; convert "
                                      f"it with x_{split}.float() (numpy: .astype(np.float32)) before distilling")
        if x.is_floating_point():
            bad = (~torch.isfinite(x)).reshape(len(x), -1).any(1)
            if bad.any():
                first = bad.nonzero()[0].item()
                raise DataValidationError(f"{name}: x_{split} has {int(bad.sum())} samples with NaN/Inf values "
                                          f"(first at index {first}); clean or drop them before distilling")
        if y.min() < 0 or y.max() >= data.num_classes:
            raise DataValidationError(f"{name}: y_{split} has labels in [{int(y.min())}, {int(y.max())}] but "
                                      f"num_classes is {data.num_classes}; labels must be 0..{data.num_classes - 1}")
    if data.x_train.shape[1:] != data.x_test.shape[1:]:
        raise DataValidationError(f"{name}: train samples have shape {tuple(data.x_train.shape[1:])} but test "
                                  f"samples {tuple(data.x_test.shape[1:])}; both splits must share one shape")
    if data.num_classes < 2:
        raise DataValidationError(f"{name}: found a single class; distillation needs at least 2 classes")
    counts = data.class_counts()
    empty = [data.class_names[c] for c, n in enumerate(counts) if n == 0]
    if empty:
        raise DataValidationError(f"{name}: classes {empty} have no training sample; remove them and relabel "
                                  "the rest as 0..K-1, or add training data for them")
    return data


@dataclass(frozen=True)
class Budget:
    """A requested summary size: ``ipc`` samples per class, or a ``total`` (or a ``ratio`` of the training set)
    spread over classes in proportion to their frequency with at least one per class (as GCond does).

    :meth:`per_class` resolves it; the resolved sizes are printed and stored, since "IPC 10" and "a budget of 100"
    differ on imbalanced data.
    """

    ipc: int | None = None
    total: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.ipc, self.total, self.ratio)]
        if sum(given) != 1:
            raise DataValidationError("give exactly one of --ipc, --budget or --ratio")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise DataValidationError(f"--ratio must be in (0, 1], got {self.ratio}")

    def describe(self) -> dict[str, object]:
        return {"ipc": self.ipc, "total": self.total, "ratio": self.ratio}

    def per_class(self, data: RealData) -> list[int]:
        """Samples per class; raises :class:`DataValidationError` when a class cannot supply its share."""
        counts = data.class_counts()
        if self.ipc is not None:
            validate_budget(data, self.ipc)
            return [self.ipc] * data.num_classes
        # a ratio refers to ``extra["ratio_base"]`` units when the modality says so (graphs: all nodes, as GCond)
        base = int(data.extra.get("ratio_base", len(data.y_train)))
        total = self.total if self.total is not None else round(self.ratio * base)  # type: ignore[operator]
        if total < data.num_classes:
            raise DataValidationError(f"{data.name}: a budget of {total} samples is smaller than the "
                                      f"{data.num_classes} classes; ask for at least {data.num_classes}")
        sizes = apportion(total, counts)
        for c, (size, count) in enumerate(zip(sizes, counts)):
            if size > count:
                raise DataValidationError(f"{data.name}: the budget asks for {size} samples of class "
                                          f"{data.class_names[c]!r}, which has only {count}; lower the budget")
        return sizes


def apportion(total: int, counts: list[int]) -> list[int]:
    """Split ``total`` samples over classes of ``counts`` samples by largest-remainder apportionment, at least one
    per class and at most ``counts[c]``.

    Every class gets the whole part of its quota ``total * count / sum(counts)`` (at least 1); what is left goes to
    the classes with the largest remainders (ties: the larger class, then the lower index). On a balanced set the
    sizes differ by at most one; otherwise they follow the class frequencies. When the minimum of one per class
    overshoots, the classes with the most to spare give one back, smallest remainder first.
    """
    n = sum(counts)
    quotas = [total * k / n for k in counts]
    sizes = [max(1, int(q)) for q in quotas]
    remainder = [q - int(q) for q in quotas]
    by_remainder = sorted(range(len(counts)), key=lambda c: (-remainder[c], -counts[c], c))
    while sum(sizes) < total:  # each round: one more to every class with room, largest remainder first
        for c in by_remainder:
            if sum(sizes) < total and sizes[c] < counts[c]:
                sizes[c] += 1
    while sum(sizes) > total:
        c = max((c for c in range(len(sizes)) if sizes[c] > 1), key=lambda c: (sizes[c] - quotas[c], -remainder[c]))
        sizes[c] -= 1
    return sizes


def validate_budget(data: RealData, ipc: int) -> None:
    """Refuse an images-per-class budget that no class can fill."""
    if ipc < 1:
        raise DataValidationError(f"ipc must be >= 1, got {ipc}")
    counts = data.class_counts()
    smallest = min(counts)
    if ipc > smallest:
        cls = data.class_names[counts.index(smallest)]
        raise DataValidationError(f"{data.name}: ipc={ipc} is larger than class {cls!r}, which has only "
                                  f"{smallest} training samples; use --ipc {smallest} or less")


class ClassIndex:
    """Indices of the training samples of each class, and seeded per-class sampling."""

    def __init__(self, labels: Tensor, num_classes: int) -> None:
        labels = labels.cpu()
        self.num_classes = num_classes
        self.indices = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]

    def sample(self, c: int, n: int, *, generator: torch.Generator | None = None, replace: bool = False) -> Tensor:
        """``n`` distinct indices of class ``c``; when the class is smaller than ``n``: all of them, shuffled, or with
        ``replace`` ``n`` indices drawn with replacement."""
        pool = self.indices[c]
        if replace and len(pool) < n:
            return pool[torch.randint(len(pool), (n,), generator=generator)]
        perm = torch.randperm(len(pool), generator=generator)[: min(n, len(pool))]
        return pool[perm]

    def sample_balanced(self, n_per_class: int, *, generator: torch.Generator | None = None) -> Tensor:
        return torch.cat([self.sample(c, n_per_class, generator=generator) for c in range(self.num_classes)])

    def sample_sizes(self, sizes: list[int], *, generator: torch.Generator | None = None,
                     replace: bool = False) -> Tensor:
        """``sizes[c]`` distinct indices of each class ``c`` (see :meth:`sample` for ``replace``), in class order."""
        return torch.cat([self.sample(c, n, generator=generator, replace=replace) for c, n in enumerate(sizes)])
