"""Budget resolution for recommender summaries (users, not classes)."""

from __future__ import annotations

from typing import Any

from distill_core.data import Budget
from distill_core.errors import DataValidationError

__all__ = ["resolve_user_budget"]


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
