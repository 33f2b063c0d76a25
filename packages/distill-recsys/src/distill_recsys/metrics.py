"""Ranking metrics over all items with seen items masked: HR@k, nDCG@k and PSP@k, as Distill-CF's eval.py.

For a user with held-out positives ``P`` and top-k list ``R`` (context items masked to -inf):

- ``HR@k = |R ∩ P| / min(|P|, k)``
- ``nDCG@k = Σ_{r: R_r ∈ P} 1/log2(r + 2) / Σ_{r < min(|P|, k)} 1/log2(r + 2)``
- ``PSP@k = [Σ_{r: R_r ∈ P} w_{R_r} / min(|P|, k)] / [Σ of the min(|P|, k) largest w over P]`` (the reference's
  asymmetric normalisation, kept on purpose so numbers compare), with propensities
  :meth:`~distill_recsys.data.InteractionData.item_propensity`.

Values are averaged over users that have held-out positives and reported x100. Scores are consumed one user batch
at a time (:class:`RankingAccumulator`), so no ``n_users x n_items`` matrix is ever held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .data import InteractionData, csr_rows_to_dense

__all__ = ["RankingAccumulator", "evaluate_scorer", "metric_names", "ranking_metrics"]

Scorer = Callable[[Tensor], Tensor]


@dataclass
class _Batch:
    ctx_row: Tensor
    ctx_col: Tensor
    has: Tensor
    rows: np.ndarray
    n_pos: Tensor
    target: Tensor
    max_psp_cum: Tensor
    kmax: int


def metric_names(ks: Sequence[int] = (10, 100)) -> list[str]:
    """The metric keys computed at cut-offs ``ks`` (``HR@k``, ``nDCG@k``, ``PSP@k``)."""
    return [f"{m}@{k}" for m in ("HR", "nDCG", "PSP") for k in sorted(ks)]


class RankingAccumulator:
    """Sums HR/nDCG/PSP over user batches.

    Args:
        propensity: ``(n_items,)`` item propensity weights for PSP.
        ks: cut-offs.
    """

    def __init__(self, propensity: np.ndarray, ks: Sequence[int] = (10, 100)) -> None:
        self.w = torch.as_tensor(propensity, dtype=torch.float64)
        self.ks = tuple(sorted(ks))
        self.sums = dict.fromkeys(metric_names(self.ks), 0.0)
        self.users = 0

    def prepare(self, context: sp.csr_matrix, targets: sp.csr_matrix) -> _Batch | None:
        """Everything about a user batch that does not depend on the scores (reused across models / λ)."""
        n_pos = torch.from_numpy(np.diff(targets.indptr).astype(np.int64))
        has = n_pos > 0
        if not bool(has.any()):
            return None
        rows = torch.nonzero(has).flatten().numpy()
        ctx = context.tocoo()
        target = csr_rows_to_dense(targets, rows, dtype=torch.float32) > 0
        kmax = min(self.ks[-1], target.shape[1])
        w_pos = torch.where(target, self.w.expand_as(target), torch.zeros((), dtype=torch.float64))
        max_psp_cum = torch.cumsum(w_pos.topk(kmax, dim=1).values, 1)
        return _Batch(torch.from_numpy(ctx.row.astype(np.int64)), torch.from_numpy(ctx.col.astype(np.int64)),
                      has, rows, n_pos[has], target, max_psp_cum, kmax)

    def add(self, scores: Tensor, context: sp.csr_matrix, targets: sp.csr_matrix,
            prepared: _Batch | None = None) -> None:
        """Add a batch: ``scores (B, n_items)``, and the batch's ``context`` / ``targets`` CSR rows ``(B, n_items)``.

        Context items are masked; users without targets are skipped. ``prepared`` (from :meth:`prepare`) skips
        the score-independent work when one batch is scored by several models.
        """
        batch = prepared if prepared is not None else self.prepare(context, targets)
        if batch is None:
            return
        scores = scores.detach().float().clone()
        scores[batch.ctx_row, batch.ctx_col] = -torch.inf
        scores = scores[batch.has]
        n_pos, kmax = batch.n_pos, batch.kmax
        top = scores.topk(kmax, dim=1).indices
        hits = batch.target.gather(1, top).to(torch.float64)
        discount = 1.0 / torch.log2(torch.arange(kmax, dtype=torch.float64) + 2.0)
        ideal_cum = torch.cumsum(discount, 0)
        w_hits = hits * self.w[top]
        for k in self.ks:
            kk = min(k, kmax)
            n_k = n_pos.clamp(max=kk)
            denom = n_k.to(torch.float64)
            self.sums[f"HR@{k}"] += float((hits[:, :kk].sum(1) / denom).sum())
            dcg = (hits[:, :kk] * discount[:kk]).sum(1)
            self.sums[f"nDCG@{k}"] += float((dcg / ideal_cum[n_k - 1]).sum())
            max_psp = batch.max_psp_cum.gather(1, (n_k - 1)[:, None]).squeeze(1)
            self.sums[f"PSP@{k}"] += float((w_hits[:, :kk].sum(1) / denom / max_psp).sum())
        self.users += len(batch.rows)

    def result(self) -> dict[str, float]:
        """Metrics x100, averaged over the users seen with targets."""
        n = max(1, self.users)
        return {key: round(100.0 * value / n, 4) for key, value in self.sums.items()}


def ranking_metrics(scores: Tensor, context: sp.csr_matrix, targets: sp.csr_matrix, propensity: np.ndarray,
                    ks: Sequence[int] = (10, 100)) -> dict[str, float]:
    """Metrics of one score matrix ``(n_users, n_items)`` (small data / tests)."""
    acc = RankingAccumulator(propensity, ks)
    acc.add(scores, context, targets)
    return acc.result()


@torch.no_grad()
def evaluate_scorer(scorer: Scorer, data: InteractionData, *, test: bool, ks: Sequence[int] = (10, 100),
                    batch_size: int = 1024, users: np.ndarray | None = None,
                    device: torch.device | str = "cpu") -> dict[str, float]:
    """Rank all items for every user with ``scorer(context_rows) -> scores``, one user batch at a time.

    Args:
        scorer: maps dense context rows ``(B, n_items)`` to scores ``(B, n_items)``.
        data: the real data.
        test: ``True``: context train + validation, targets test; ``False``: context train, targets validation.
        ks: cut-offs.
        batch_size: users per batch (bounds memory).
        users: evaluate only these users (default: all).
        device: where the context rows are put.
    """
    context, targets = data.context(test=test), data.targets(test=test)
    acc = RankingAccumulator(data.item_propensity(), ks)
    all_users = np.arange(data.n_users) if users is None else np.asarray(users)
    for start in range(0, len(all_users), batch_size):
        rows = all_users[start:start + batch_size]
        x = csr_rows_to_dense(context, rows, device=device)
        acc.add(scorer(x).cpu(), context[rows], targets[rows])
    return acc.result()
