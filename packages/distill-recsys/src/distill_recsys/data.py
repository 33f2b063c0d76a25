"""Implicit-feedback data: one sparse convention (CSR, users x items, as ``implicit``), validation and the split.

Every loader returns an :class:`InteractionData` holding three CSR matrices (train / validation / test) over the same
users and items, the original ids of both (the mapping is kept so that exports speak the user's ids) and the split
protocol that produced them. The default protocol is the Distill-CF / infinity-AE paper's (noveens/distill_cf and the
infinity-AE code): every observed rating is a positive; users with fewer than 3 interactions are dropped; per user the
interactions are shuffled, one is forced into test, the first 80 % go to train, the next 10 % to validation and the rest
to test. Options: a rating threshold, k-core filtering and leave-k-out, all seeded.

Nothing here densifies the whole matrix: :meth:`InteractionData.dense_rows` materialises a batch of users only.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from distill_core.errors import DataValidationError
from distill_core.preprocessing import Preprocessing

__all__ = [
    "InteractionData",
    "SplitProtocol",
    "as_csr",
    "build_interaction_data",
    "csr_rows_to_dense",
    "k_core",
    "split_codes",
]

logger = logging.getLogger(__name__)

TRAIN, VAL, TEST, DROPPED = 0, 1, 2, -1


@dataclass(frozen=True)
class SplitProtocol:
    """How interactions become train / validation / test.

    Args:
        kind: ``"ratio"`` (the paper: one interaction forced into test, then 80/10/10 per user) or
            ``"leave-k-out"`` (``k`` random interactions per user to test and ``k`` to validation).
        val_frac: validation fraction of each user's interactions (``ratio``).
        test_frac: test fraction (``ratio``); train gets the rest.
        leave_k: interactions per user held out for test and for validation (``leave-k-out``).
        min_user_interactions: users with fewer interactions are dropped (the paper: 3).
        rating_threshold: keep only ratings ``>=`` this value (``None``: every rating is a positive, the paper).
        k_core: iteratively drop users and items with fewer than ``k_core`` interactions (0: off).
        seed: seed of the per-user shuffle.
    """

    kind: Literal["ratio", "leave-k-out"] = "ratio"
    val_frac: float = 0.1
    test_frac: float = 0.1
    leave_k: int = 1
    min_user_interactions: int = 3
    rating_threshold: float | None = None
    k_core: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("ratio", "leave-k-out"):
            raise DataValidationError(f"split kind must be 'ratio' or 'leave-k-out', got {self.kind!r}")
        if not (0 <= self.val_frac < 1 and 0 < self.test_frac < 1 and self.val_frac + self.test_frac < 1):
            raise DataValidationError(f"need 0 <= val_frac, 0 < test_frac and val_frac + test_frac < 1, got "
                                      f"{self.val_frac} and {self.test_frac}")
        if self.leave_k < 1:
            raise DataValidationError(f"leave_k must be >= 1, got {self.leave_k}")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "val_frac": self.val_frac, "test_frac": self.test_frac, "leave_k": self.leave_k,
                "min_user_interactions": self.min_user_interactions, "rating_threshold": self.rating_threshold,
                "k_core": self.k_core, "seed": self.seed}


def as_csr(matrix: Any, *, name: str = "interactions", binarize: bool = True) -> sp.csr_matrix:
    """Coerce ``matrix`` to a float32 CSR matrix (users x items), warning about every conversion made.

    Accepts any scipy sparse matrix/array, a dense numpy array or a torch tensor. Duplicate entries are merged
    (with a warning), explicit zeros removed, and with ``binarize`` every stored value becomes 1.

    Raises:
        DataValidationError: not 2-D, non-finite or negative values, or an unsupported type.
    """
    if isinstance(matrix, Tensor):
        warnings.warn(f"{name}: converted a dense torch tensor to scipy CSR (users x items); pass a "
                      "scipy.sparse.csr_matrix to avoid the copy", stacklevel=2)
        matrix = sp.csr_matrix(matrix.detach().cpu().numpy())
    elif isinstance(matrix, np.ndarray):
        warnings.warn(f"{name}: converted a dense numpy array to scipy CSR (users x items); pass a "
                      "scipy.sparse.csr_matrix to avoid the copy", stacklevel=2)
        matrix = sp.csr_matrix(matrix)
    elif sp.issparse(matrix):
        if matrix.format != "csr":
            warnings.warn(f"{name}: converted a scipy {matrix.format.upper()} matrix to CSR (users x items, the "
                          "convention of implicit)", stacklevel=2)
        matrix = sp.csr_matrix(matrix)
    else:
        raise DataValidationError(f"{name}: expected a scipy sparse matrix (users x items), a numpy array or a "
                                  f"torch tensor, got {type(matrix).__name__}")
    if matrix.ndim != 2:
        raise DataValidationError(f"{name}: expected a 2-D users x items matrix, got {matrix.ndim} dimensions")
    matrix = matrix.astype(np.float32)
    if not matrix.has_canonical_format:
        before = matrix.nnz
        matrix.sum_duplicates()
        if matrix.nnz < before:
            warnings.warn(f"{name}: merged {before - matrix.nnz} duplicate (user, item) entries", stacklevel=2)
    if matrix.nnz and not np.isfinite(matrix.data).all():
        raise DataValidationError(f"{name}: has NaN/Inf values; clean them before distilling")
    if matrix.nnz and (matrix.data < 0).any():
        raise DataValidationError(f"{name}: has {int((matrix.data < 0).sum())} negative values; implicit feedback "
                                  "must be >= 0 (drop negative feedback or shift the ratings first)")
    matrix.eliminate_zeros()
    if binarize:
        matrix.data[:] = 1.0
    return matrix


def csr_rows_to_dense(matrix: sp.csr_matrix, rows: np.ndarray | slice, *, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """The dense ``(len(rows), n_items)`` tensor of the CSR rows ``rows`` (only this batch is densified)."""
    block = matrix[rows]
    out = torch.zeros(block.shape, dtype=dtype)
    if block.nnz:
        counts = np.diff(block.indptr)
        r = torch.from_numpy(np.repeat(np.arange(block.shape[0]), counts))
        c = torch.from_numpy(block.indices.astype(np.int64))
        out[r, c] = torch.from_numpy(block.data).to(dtype)
    return out.to(device)


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the interactions that survive iterative k-core filtering (users and items with >= k)."""
    keep = np.ones(len(users), dtype=bool)
    if k <= 1:
        return keep
    while True:
        u_count = np.bincount(users[keep], minlength=users.max() + 1 if len(users) else 0)
        i_count = np.bincount(items[keep], minlength=items.max() + 1 if len(items) else 0)
        new = keep & (u_count[users] >= k) & (i_count[items] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


def split_codes(users: np.ndarray, protocol: SplitProtocol) -> np.ndarray:
    """Per-interaction split code (0 train, 1 validation, 2 test, -1 dropped) for contiguous ``users`` ids.

    ``ratio`` follows Distill-CF's preprocess.py: a random permutation per user; position 0 goes to test, positions
    below ``floor((1 - val - test) n)`` to train, below ``floor((1 - test) n)`` to validation, the rest to test.
    """
    rng = np.random.default_rng(protocol.seed)
    n = len(users)
    order = np.lexsort((rng.random(n), users))
    counts = np.bincount(users, minlength=int(users.max()) + 1 if n else 0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - np.repeat(starts, counts)
    size = counts[users]
    codes = np.full(n, TRAIN, dtype=np.int8)
    if protocol.kind == "ratio":
        first = np.floor((1.0 - protocol.val_frac - protocol.test_frac) * size).astype(np.int64)
        second = np.floor((1.0 - protocol.test_frac) * size).astype(np.int64)
        codes[(rank >= first) & (rank < second)] = VAL
        codes[rank >= second] = TEST
        codes[rank == 0] = TEST
    else:
        k = protocol.leave_k
        codes[rank < k] = TEST
        codes[(rank >= k) & (rank < 2 * k)] = VAL
    codes[size < protocol.min_user_interactions] = DROPPED
    return codes


@dataclass
class InteractionData:
    """Implicit feedback split into train / validation / test CSR matrices over the same users and items.

    Args:
        name: the dataset spec (``"ml-1m"``, ``"csv:/path"``).
        train: training interactions ``(n_users, n_items)`` CSR, values 1 (or weights).
        val: validation interactions, same shape.
        test: test interactions, same shape.
        user_ids: original id of each row.
        item_ids: original id of each column.
        protocol: the split protocol (``None`` when the split was shipped with the data).
        extra: JSON-able metadata stored in the artifact.

    Shapes:
        ``train``, ``val``, ``test``: ``(n_users, n_items)``; ``user_ids``: ``(n_users,)``; ``item_ids``:
        ``(n_items,)``.
    """

    name: str
    train: sp.csr_matrix
    val: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    protocol: SplitProtocol | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)

    def __post_init__(self) -> None:
        shapes = {self.train.shape, self.val.shape, self.test.shape}
        if len(shapes) != 1:
            raise DataValidationError(f"{self.name}: train, validation and test matrices have different shapes "
                                      f"{sorted(shapes)}; they must share users and items")
        if len(self.user_ids) != self.n_users or len(self.item_ids) != self.n_items:
            raise DataValidationError(f"{self.name}: {len(self.user_ids)} user ids / {len(self.item_ids)} item ids "
                                      f"for a {self.n_users} x {self.n_items} matrix")
        self._propensity: np.ndarray | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Name, shape and a content hash of the training interactions (a resumed run must see the same data)."""
        from distill_core.data import tensor_digest

        train = self.train.tocsr()
        parts = [torch.from_numpy(np.ascontiguousarray(a)) for a in (train.indptr, train.indices, train.data)]
        return {"name": self.name, "n_users": self.n_users, "n_items": self.n_items, "nnz": int(train.nnz),
                "train_sha": tensor_digest(*parts)}

    # -- views -----------------------------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])

    @property
    def num_classes(self) -> int:
        """Recommender data has no classes; the core's loop sees one pseudo-class of users."""
        return 1

    @property
    def y_train(self) -> Tensor:
        return torch.zeros(self.n_users, dtype=torch.long)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample is one user's row over all items."""
        return (self.n_items,)

    @property
    def mean_interactions(self) -> float:
        """Average training interactions per user (Distill-CF's cardinality normaliser)."""
        return self.train.nnz / max(1, self.n_users)

    def context(self, *, test: bool) -> sp.csr_matrix:
        """The rows a model sees when predicting: train (validation time) or train + validation (test time)."""
        if not test:
            return self.train
        merged = (self.train + self.val).tocsr()
        merged.data[:] = 1.0
        return merged

    def targets(self, *, test: bool) -> sp.csr_matrix:
        """Held-out positives: validation or test."""
        return self.test if test else self.val

    def item_propensity(self, *, a: float = 0.55, b: float = 1.5) -> np.ndarray:
        """Propensity weights ``w_i = 1 + C (n_i + B)^-A``, ``C = (ln N - 1)(B + 1)^A`` from train counts
        (Jain et al. 2016 as used by Distill-CF's PSP@k)."""
        if self._propensity is None:
            counts = np.asarray(self.train.getnnz(axis=0), dtype=np.float64)
            c = (np.log(max(self.train.nnz, 2)) - 1.0) * (b + 1.0) ** a
            self._propensity = 1.0 + c * np.power(counts + b, -a)
        return self._propensity

    def dense_rows(self, rows: np.ndarray | slice, *, split: Literal["train", "context"] = "train",
                   device: torch.device | str = "cpu") -> Tensor:
        """Dense training rows of a batch of users (the only densification of real data)."""
        matrix = self.train if split == "train" else self.context(test=True)
        return csr_rows_to_dense(matrix, rows, device=device)

    def user_batches(self, batch_size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.n_users, batch_size):
            yield np.arange(start, min(start + batch_size, self.n_users))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": "implicit-feedback",
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_train": int(self.train.nnz),
            "n_val": int(self.val.nnz),
            "n_test": int(self.test.nnz),
            "density": round(self.train.nnz / max(1, self.n_users * self.n_items), 6),
            "split": self.protocol.describe() if self.protocol is not None else "shipped",
            # core's RealData fields, so generic code that reads them still works
            "num_classes": 1,
            "sample_shape": [self.n_items],
        }
        out.update(self.extra)
        return out


def build_interaction_data(
    name: str,
    users: np.ndarray,
    items: np.ndarray,
    *,
    ratings: np.ndarray | None = None,
    protocol: SplitProtocol | None = None,
    codes: np.ndarray | None = None,
    extra: dict[str, Any] | None = None,
) -> InteractionData:
    """Remap raw ids to contiguous ones, split (or use the shipped ``codes``) and build the three CSR matrices.

    Args:
        name: dataset spec.
        users: raw user id of each interaction (any sortable dtype).
        items: raw item id of each interaction.
        ratings: optional explicit ratings (used by ``protocol.rating_threshold``).
        protocol: the split protocol (default: the paper's); ignored when ``codes`` is given.
        codes: a shipped split (0 train, 1 validation, 2 test, -1 dropped) per interaction.
        extra: metadata for the artifact.

    Raises:
        DataValidationError: empty input, mismatched lengths, negative integer ids, a split with no training data.
    """
    users, items = np.asarray(users), np.asarray(items)
    if users.ndim != 1 or users.shape != items.shape:
        raise DataValidationError(f"{name}: users and items must be 1-D arrays of the same length, got shapes "
                                  f"{users.shape} and {items.shape}")
    if len(users) == 0:
        raise DataValidationError(f"{name}: no interactions; the file or matrix is empty")
    for what, ids in (("user", users), ("item", items)):
        if np.issubdtype(ids.dtype, np.number) and (ids < 0).any():
            raise DataValidationError(f"{name}: {int((ids < 0).sum())} negative {what} ids (first "
                                      f"{ids[ids < 0][0]}); ids must be >= 0 (or strings)")
    keep = np.ones(len(users), dtype=bool)
    if codes is not None:
        codes = np.asarray(codes).astype(np.int8)
        if codes.shape != users.shape:
            raise DataValidationError(f"{name}: the split has {len(codes)} entries for {len(users)} interactions")
        keep &= codes != DROPPED
    else:
        protocol = protocol or SplitProtocol()
        if protocol.rating_threshold is not None:
            if ratings is None:
                raise DataValidationError(f"{name}: rating_threshold needs ratings, but the data has none")
            keep &= np.asarray(ratings) >= protocol.rating_threshold
    # duplicates: keep the first occurrence of each (user, item) pair
    u_raw, u_inv = np.unique(users, return_inverse=True)
    i_raw, i_inv = np.unique(items, return_inverse=True)
    pair = u_inv.astype(np.int64) * len(i_raw) + i_inv
    first = np.zeros(len(pair), dtype=bool)
    first[np.unique(pair, return_index=True)[1]] = True
    if (~first).any():
        warnings.warn(f"{name}: dropped {int((~first).sum())} duplicate (user, item) interactions (kept the first "
                      "of each pair)", stacklevel=2)
        keep &= first
    if codes is None and protocol is not None and protocol.k_core > 1:
        idx = np.nonzero(keep)[0]
        survive = k_core(u_inv[idx], i_inv[idx], protocol.k_core)
        keep[idx[~survive]] = False
    idx = np.nonzero(keep)[0]
    if len(idx) == 0:
        raise DataValidationError(f"{name}: no interaction survives the filters (threshold / k-core); relax them")
    u_ids, u_new = np.unique(u_inv[idx], return_inverse=True)
    i_ids, i_new = np.unique(i_inv[idx], return_inverse=True)
    if codes is None:
        assert protocol is not None
        sub_codes = split_codes(u_new, protocol)
    else:
        sub_codes = codes[idx]
    dropped_users = np.setdiff1d(np.arange(len(u_ids)), np.unique(u_new[sub_codes != DROPPED]))
    if len(dropped_users):
        logger.warning("%s: dropped %d users with fewer than %d interactions", name, len(dropped_users),
                       protocol.min_user_interactions if protocol else 0)
    live = sub_codes != DROPPED
    # users dropped entirely are removed (re-map once more so rows are contiguous)
    u_keep, u_final = np.unique(u_new[live], return_inverse=True)
    i_keep, i_final = np.unique(i_new[live], return_inverse=True)
    shape = (len(u_keep), len(i_keep))
    sub = sub_codes[live]

    def matrix(code: int) -> sp.csr_matrix:
        m = sub == code
        return sp.csr_matrix((np.ones(int(m.sum()), dtype=np.float32), (u_final[m], i_final[m])), shape=shape)

    train, val, test = matrix(TRAIN), matrix(VAL), matrix(TEST)
    if train.nnz == 0:
        raise DataValidationError(
            f"{name}: the split leaves no training interaction ({len(users)} interactions; users with fewer than "
            f"{protocol.min_user_interactions if protocol else 0} are dropped); add interactions or lower "
            "SplitProtocol.min_user_interactions")
    no_train = int((train.getnnz(axis=1) == 0).sum())
    if no_train:
        logger.warning("%s: %d users have no training interaction (they are still evaluated)", name, no_train)
    return InteractionData(name=name, train=train, val=val, test=test, user_ids=u_raw[u_ids[u_keep]],
                           item_ids=i_raw[i_ids[i_keep]], protocol=None if codes is not None else protocol,
                           extra=dict(extra or {}))
