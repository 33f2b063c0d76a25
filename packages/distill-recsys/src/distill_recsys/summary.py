"""Recommender summaries: synthetic users as a sparse CSR matrix (the artifact) and as learnable logits (training).

:class:`SparseUserSummary` is what Distill-CF and the user baselines save: ``budget`` synthetic (or selected real)
users over the real items, stored through distill-core's artifact format as index/value pieces (``indptr``,
``indices``, ``values``) with the shape and the item-id mapping in the manifest, so exports speak the dataset's
item ids. :class:`UserLogitSummary` is Distill-CF's learnable dense logit matrix during distillation.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from distill_core.errors import ArtifactError, DataValidationError
from distill_core.preprocessing import Preprocessing
from distill_core.synset import Summary, register_summary_type

from .data import as_csr, csr_rows_to_dense

if TYPE_CHECKING:
    from distill_core.artifact import Artifact

__all__ = ["SparseUserSummary", "UserLogitSummary", "sparsify_rows", "summary_of"]


def sparsify_rows(dense: Tensor, k: int, *, binary: bool = False) -> sp.csr_matrix:
    """Keep the ``k`` largest positive entries of each row of ``dense (n, m)`` as a CSR matrix."""
    k = max(1, min(k, dense.shape[1]))
    values, idx = dense.detach().float().topk(k, dim=1)
    keep = values > 0
    rows = torch.arange(len(dense))[:, None].expand_as(idx)[keep].numpy()
    vals = np.ones(int(keep.sum()), dtype=np.float32) if binary else values[keep].numpy().astype(np.float32)
    return sp.csr_matrix((vals, (rows, idx[keep].numpy())), shape=tuple(dense.shape))


@register_summary_type
class SparseUserSummary(Summary):
    """``budget`` users x ``n_items`` implicit feedback, stored sparse (CSR), optionally weighted.

    The base :class:`~distill_core.synset.Summary` sees ``budget`` samples of one pseudo-class (recommender data
    has no classes); the matrix itself lives in buffers. Its parameter ``x`` is a ``(budget, 1)`` column of zeros
    that is never saved: the coresets' zero-step runs go through distill-core's outer loop, which reads ``x``.

    Args:
        matrix: the users x items matrix (any scipy sparse type; converted to CSR with a warning otherwise).
        item_ids: original id of each item column (kept for exports); default ``0..n_items-1``.
        weighted: keep the stored values (``False``: every stored entry is a 1).
        source_users: for coresets of real users, the chosen row indices.
        preprocessing: unused (kept for the core interface).

    Shapes:
        ``dense()``: ``(budget, n_items)``.
    """

    summary_type: ClassVar[str] = "sparse-users"

    def __init__(self, *, matrix: sp.spmatrix | np.ndarray | Tensor, item_ids: np.ndarray | None = None,
                 weighted: bool = True, source_users: np.ndarray | None = None,
                 preprocessing: Preprocessing | None = None) -> None:
        csr = as_csr(matrix, name="summary", binarize=not weighted)
        n = csr.shape[0]
        if n == 0:
            raise DataValidationError("the summary has no users")
        empty = int((csr.getnnz(axis=1) == 0).sum())
        if empty:
            raise DataValidationError(f"the summary has {empty} users without any interaction; drop them or give "
                                      "each synthetic user at least one item")
        super().__init__(x=torch.zeros(n, 1), labels=torch.zeros(n, dtype=torch.long), num_classes=1,
                         preprocessing=preprocessing)
        self.n_items = int(csr.shape[1])
        self.weighted = weighted
        self.register_buffer("indptr", torch.from_numpy(csr.indptr.astype(np.int64)))
        self.register_buffer("indices", torch.from_numpy(csr.indices.astype(np.int64)))
        self.register_buffer("values", torch.from_numpy(csr.data.astype(np.float32)))
        ids = np.arange(self.n_items) if item_ids is None else np.asarray(item_ids)
        if len(ids) != self.n_items:
            raise DataValidationError(f"{len(ids)} item ids for {self.n_items} item columns")
        self.item_ids = ids
        self.source_users = None if source_users is None else np.asarray(source_users, dtype=np.int64)

    # -- views -----------------------------------------------------------------------------------------------------
    @property
    def budget(self) -> int:
        return int(len(self.indptr) - 1)

    @property
    def nnz(self) -> int:
        return len(self.values)

    def to_csr(self) -> sp.csr_matrix:
        """The summary as a scipy CSR matrix ``(budget, n_items)``."""
        return sp.csr_matrix((self.values.cpu().numpy(), self.indices.cpu().numpy(), self.indptr.cpu().numpy()),
                             shape=(self.budget, self.n_items))

    def top_k(self, k: int, *, binary: bool = False) -> SparseUserSummary:
        """A sparser summary: the ``k`` largest positive entries of each user (weights kept, or 1s).

        Distill-CF saves its dense continuous sample by default; this derives the sparse version of it.
        """
        return SparseUserSummary(matrix=sparsify_rows(self.dense(), k, binary=binary), item_ids=self.item_ids,
                                 weighted=not binary)

    def dense(self) -> Tensor:
        """Dense ``(budget, n_items)`` float tensor (the support side is small: budget rows)."""
        return csr_rows_to_dense(self.to_csr(), slice(None))

    def materialize(self) -> tuple[Tensor, Tensor]:
        """``(x, targets)``: an autoencoder reconstructs its input, so both are the dense matrix."""
        x = self.dense()
        return x, x

    def targets(self) -> Tensor:
        return self.dense()

    def describe(self) -> dict[str, Any]:
        ids: Any = self.item_ids.tolist()
        return {
            "type": self.summary_type,
            "num_classes": 1,
            "label_kind": "hard",
            "budget": self.budget,
            "ipc": self.budget,
            "shape": [self.budget, self.n_items],
            "nnz": self.nnz,
            "weighted": self.weighted,
            "item_ids": ids if self.item_ids.dtype.kind in "US" or self.item_ids.dtype == object else None,
            "learned_lr": None,
        }

    # -- serialisation ---------------------------------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        out = {"indptr": self.indptr.cpu().contiguous(), "indices": self.indices.cpu().contiguous(),
               "values": self.values.cpu().contiguous()}
        if self.item_ids.dtype.kind in "iu":
            out["item_ids"] = torch.from_numpy(self.item_ids.astype(np.int64))
        if self.source_users is not None:
            out["source_users"] = torch.from_numpy(self.source_users)
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any],
                     preprocessing: Preprocessing) -> SparseUserSummary:
        try:
            shape = tuple(int(s) for s in meta["shape"])
            indptr, indices, values = tensors["indptr"], tensors["indices"], tensors["values"]
        except KeyError as exc:
            raise ArtifactError(f"the sparse summary lacks {exc}; re-create it with `distill run`") from exc
        if len(indptr) != shape[0] + 1 or len(indices) != len(values) or int(indptr[-1]) != len(values):
            raise ArtifactError("the sparse summary's indptr/indices/values do not fit its shape; the artifact is "
                                "corrupt, re-create it with `distill run`")
        if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= shape[1]):
            raise ArtifactError(f"the sparse summary has item indices outside [0, {shape[1]}); the artifact is corrupt")
        matrix = sp.csr_matrix((values.numpy(), indices.numpy(), indptr.numpy()), shape=shape)
        if "item_ids" in tensors:
            item_ids: np.ndarray | None = tensors["item_ids"].numpy()
        elif meta.get("item_ids") is not None:
            item_ids = np.asarray(meta["item_ids"])
        else:
            item_ids = None
        source = tensors["source_users"].numpy() if "source_users" in tensors else None
        return cls(matrix=matrix, item_ids=item_ids, weighted=bool(meta.get("weighted", True)), source_users=source,
                   preprocessing=preprocessing)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write ``user,item,weight`` rows (synthetic user index, original item id, stored value)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        csr = self.to_csr()
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["user", "item", "weight"])
            for u in range(csr.shape[0]):
                lo, hi = csr.indptr[u], csr.indptr[u + 1]
                for j, v in zip(csr.indices[lo:hi], csr.data[lo:hi]):
                    writer.writerow([u, self.item_ids[j], f"{float(v):.6g}"])
        return path


@register_summary_type
class UserLogitSummary(Summary):
    """Distill-CF's learnable dense logits ``(budget, n_items)`` (``x``), initialised from real users' rows.

    Only used during distillation (checkpoints); the artifact stores the sampled :class:`SparseUserSummary`.
    """

    summary_type: ClassVar[str] = "user-logits"

    def __init__(self, *, x: Tensor, preprocessing: Preprocessing | None = None, **_: Any) -> None:
        super().__init__(x=x, labels=torch.zeros(len(x), dtype=torch.long), num_classes=1,
                         preprocessing=preprocessing)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "type": self.summary_type, "shape": list(self.x.shape)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor], meta: dict[str, Any],
                     preprocessing: Preprocessing) -> UserLogitSummary:
        return cls(x=tensors["x"], preprocessing=preprocessing)


def summary_of(artifact: Artifact | Summary) -> SparseUserSummary:
    """The sparse summary of an artifact, or the summary itself (fails clearly for non-recommender summaries)."""
    summary = artifact if isinstance(artifact, Summary) else artifact.summary
    if not isinstance(summary, SparseUserSummary):
        raise ArtifactError(f"the artifact holds a {summary.summary_type!r} summary, not a recommender "
                            "(sparse-users) summary")
    return summary
