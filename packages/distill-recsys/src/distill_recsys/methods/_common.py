"""Budget resolution for recommender summaries (users, not classes) and the real users a summary starts from."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from distill_core.data import Budget
from distill_core.errors import DataValidationError

__all__ = ["active_users", "random_users", "resolve_user_budget"]


def resolve_user_budget(budget: Budget, data: Any) -> int:
    """Synthetic users asked for by ``budget``: ``--budget N`` users, or ``--ratio R`` of the real users.

    Raises:
        DataValidationError: ``--ipc`` (recommender data has no classes), a non-positive size, or more users than
            the data has.
    """
    if budget.ipc is not None:
        raise DataValidationError("recommender data has no classes, so --ipc does not apply; give the number of "
                                  "synthetic users with --budget N (or a fraction of the real users with --ratio R)")
    n = budget.total if budget.total is not None else round(float(budget.ratio) * data.n_users)  # type: ignore[arg-type]
    if n < 1:
        raise DataValidationError(f"the budget resolves to {n} users; ask for at least 1")
    if n > data.n_users:
        raise DataValidationError(f"{data.name}: a budget of {n} users is larger than the {data.n_users} real users; "
                                  f"ask for at most {data.n_users}")
    return int(n)


def active_users(budget: Budget, data: Any, *, what: str = "users") -> tuple[int, np.ndarray]:
    """The number of users ``budget`` asks for (:func:`resolve_user_budget`) and the ids of the users with training
    interactions, the pool every summary starts from (ascending).

    Raises:
        DataValidationError: as :func:`resolve_user_budget`, or the budget exceeds the users with interactions
            (``what`` names the summary's users in the message).
    """
    n = resolve_user_budget(budget, data)
    active = np.nonzero(data.train.getnnz(axis=1) > 0)[0]
    if n > len(active):
        raise DataValidationError(f"{data.name}: a budget of {n} {what} exceeds the {len(active)} users with "
                                  f"training interactions; ask for at most {len(active)}")
    return n, active


def random_users(pool: np.ndarray, n: int, generator: torch.Generator) -> np.ndarray:
    """``n`` users of ``pool`` drawn uniformly without replacement (in draw order)."""
    return pool[torch.randperm(len(pool), generator=generator)[:n].numpy()]
