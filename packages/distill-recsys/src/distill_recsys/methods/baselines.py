"""Real-user coresets at the same budget: the yardsticks a Distill-CF summary must beat.

- ``random-users``: ``budget`` real users drawn uniformly (among users with training data).
- ``head-users``: the ``budget`` most active users (most training interactions).
- ``kcenter-users``: greedy k-center (Sener & Savarese, ICLR 2018, https://arxiv.org/abs/1708.00489) on user
  embeddings (truncated SVD of the training matrix, rows L2-normalised), started from the user nearest the mean.

Each saves the chosen users' training rows as a :class:`~distill_recsys.summary.SparseUserSummary` (binary) with
the chosen row indices; no outer steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from distill_core.baselines import k_center_select
from distill_core.data import Budget
from distill_core.method import Method, MethodConfig
from distill_core.modality import Modality

from ..data import InteractionData
from ..summary import SparseUserSummary
from ._common import active_users, random_users

__all__ = ["HeadUsers", "KCenterUsers", "RandomUsers", "UserCoresetConfig", "user_embeddings"]


@dataclass
class UserCoresetConfig(MethodConfig):
    """User coresets take no outer steps."""

    steps: int = 0
    embedding_dim: int = field(default=64, metadata={"help": "SVD dimensions of the k-center user embedding"})
    candidates: int = field(default=20000, metadata={
        "help": "random candidate users for k-center (bounds its O(budget x candidates) cost)"})


def user_embeddings(data: InteractionData, users: np.ndarray, *, dim: int, seed: int) -> torch.Tensor:
    """L2-normalised truncated-SVD embeddings ``(len(users), dim)`` of the users' training rows (sparse SVD)."""
    from scipy.sparse.linalg import svds

    matrix = data.train.astype(np.float64)
    k = max(1, min(dim, min(matrix.shape) - 1))
    rng = np.random.default_rng(seed)
    u, s, _ = svds(matrix, k=k, v0=rng.standard_normal(min(matrix.shape)))
    emb = torch.from_numpy((u * s)[users]).float()
    return emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)


class _UserCoreset(Method[UserCoresetConfig]):
    """Real users chosen by :meth:`choose`, saved as a binary summary of their training rows (no outer steps)."""

    modality = "recsys"
    _users = 0

    def choose(self, data: InteractionData, active: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
        """``n`` of the ``active`` user rows (any order)."""
        raise NotImplementedError

    def init_summary(self, data: InteractionData, *, budget: Budget,  # type: ignore[override]
                     modality: Modality, generator: torch.Generator) -> SparseUserSummary:
        n, active = active_users(budget, data)
        chosen = np.sort(self.choose(data, active, n, generator))
        self._users = len(chosen)
        return SparseUserSummary(matrix=data.train[chosen], item_ids=data.item_ids, weighted=False,
                                 source_users=chosen)

    def run_step(self, summary: Any, ctx: Any) -> float:  # pragma: no cover - steps is 0
        return 0.0

    def extra_metadata(self) -> dict[str, Any]:
        """The chosen users for the manifest (``resolved_users``), once :meth:`init_summary` chose them."""
        return {"resolved_users": self._users} if self._users else {}


class RandomUsers(_UserCoreset):
    """Random real users (recommender baseline)."""

    def choose(self, data: InteractionData, active: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
        return random_users(active, n, generator)


class HeadUsers(_UserCoreset):
    """The most active real users (recommender baseline)."""

    def choose(self, data: InteractionData, active: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
        counts = data.train.getnnz(axis=1)[active]
        return active[np.argsort(-counts, kind="stable")[:n]]  # type: ignore[no-any-return]


class KCenterUsers(_UserCoreset):
    """Greedy k-center over SVD user embeddings (recommender baseline), among at most ``candidates`` random users."""

    def choose(self, data: InteractionData, active: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
        pool = active
        if len(pool) > self.config.candidates:
            pool = np.sort(random_users(active, self.config.candidates, generator))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        emb = user_embeddings(data, pool, dim=self.config.embedding_dim, seed=seed)
        return pool[k_center_select(emb, n).numpy()]  # type: ignore[no-any-return]
