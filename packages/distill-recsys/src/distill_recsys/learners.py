"""The four learners a summary is judged by: infinity-AE, EASE, implicit's ALS and BPR.

Each learner is fit on a *support* matrix (the summary's synthetic users, or the full training matrix) and then
scores real users from their own context rows (train rows at validation time, train + validation rows at test
time), one user batch at a time. Hyper-parameters with a grid are chosen on validation HR@100 (the papers'
model-selection metric); the choice is returned with the metrics (lesson 11).

- infinity-AE (Sachdeva et al., NeurIPS 2022, https://arxiv.org/abs/2206.02626): kernel ridge regression with the
  NTK of an infinitely wide one-hidden-layer autoencoder, ``scores = K(x_u, X_s)(K_ss + λ tr(K_ss)/n I)^-1 X_s``,
  with distill-core's :func:`~distill_core.kernels.fc_ntk` and :func:`~distill_core.objectives.krr_solve`.
- EASE (Steck, WWW 2019, https://arxiv.org/abs/1905.03375): ``B = I - P diag(1/diag P)``, ``P = (XᵀX + λI)^-1``.
- ALS (Hu, Koren & Volinsky, ICDM 2008) and BPR (Rendle et al., UAI 2009) from ``implicit``; real users are
  folded in against the item factors learned on the support (ALS: implicit's own ``recalculate_user``; BPR, which
  has no fold-in, by the same confidence-weighted least squares with its item biases).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from distill_core.errors import UnknownNameError
from distill_core.kernels import fc_ntk
from distill_core.objectives import krr_solve

from .data import InteractionData, csr_rows_to_dense
from .metrics import RankingAccumulator, evaluate_scorer

__all__ = ["ALS", "BPR", "EASE", "LEARNERS", "InfiniteAE", "Learner", "LearnerResult", "get_learner",
           "least_squares_fold_in"]

logger = logging.getLogger(__name__)
Scorer = Callable[[Tensor], Tensor]
SELECT_METRIC = "HR@100"


@dataclass
class LearnerResult:
    """Test metrics of one learner fit on one support, with the validation-chosen hyper-parameter."""

    learner: str
    test: dict[str, float]
    val: dict[str, float]
    chosen: dict[str, Any]
    grid: dict[str, dict[str, float]] = field(default_factory=dict)
    fit_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"learner": self.learner, "test": self.test, "val": self.val, "chosen": self.chosen,
                "val_grid": self.grid, "fit_s": round(self.fit_s, 3)}


def _as_dense(support: Tensor | sp.spmatrix) -> Tensor:
    if isinstance(support, Tensor):
        return support.detach().float()
    return csr_rows_to_dense(sp.csr_matrix(support), slice(None))


def _as_csr(support: Tensor | sp.spmatrix) -> sp.csr_matrix:
    if isinstance(support, Tensor):
        return sp.csr_matrix(support.detach().cpu().numpy().astype(np.float32))
    return sp.csr_matrix(support, dtype=np.float32)


class Learner:
    """A recommender fit on a support matrix and scoring real users from their context rows."""

    name: ClassVar[str] = ""
    grid: Sequence[Any] = ()
    select_metric: str = SELECT_METRIC

    def fit(self, support: Tensor | sp.spmatrix, *, value: Any, seed: int) -> Scorer:
        raise NotImplementedError

    def evaluate(self, support: Tensor | sp.spmatrix, data: InteractionData, *, seed: int = 0,
                 batch_size: int = 1024, device: torch.device | str = "cpu") -> LearnerResult:
        """Pick the grid value with the best validation HR@100, then report test metrics with it."""
        import time

        start = time.perf_counter()
        grid: dict[str, dict[str, float]] = {}
        best_value, best_val, best_scorer = None, None, None
        for value in (self.grid or [None]):
            scorer = self.fit(support, value=value, seed=seed)
            val = evaluate_scorer(scorer, data, test=False, batch_size=batch_size, device=device)
            grid[str(value)] = val
            if best_val is None or val[self.select_metric] > best_val[self.select_metric]:
                best_value, best_val, best_scorer = value, val, scorer
        assert best_scorer is not None and best_val is not None
        test = evaluate_scorer(best_scorer, data, test=True, batch_size=batch_size, device=device)
        return LearnerResult(self.name, test, best_val, {"value": best_value}, grid, time.perf_counter() - start)


@dataclass
class InfiniteAE(Learner):
    """infinity-AE: KRR with the depth-1 FC ReLU NTK (σ_w² = 2, σ_b² = 0.01), items as regression targets.

    Args:
        depth: hidden ReLU layers (paper: 1).
        grid: λ values (relative to tr(K)/n), chosen on validation ``select_metric`` (Distill-CF's grid).
        select_metric: validation metric that picks λ (the papers': HR@100).
        float64: solve the support system in double precision (``None``: when the support has <= 2048 users).
    """

    name: ClassVar[str] = "infinite-ae"
    depth: int = 1
    grid: Sequence[float] = (1e-5, 1e-3, 0.1, 1.0, 5.0, 50.0)
    float64: bool | None = None
    block_size: int = 2048
    select_metric: str = SELECT_METRIC

    def kernel(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        return fc_ntk(x1, x2, depth=self.depth, w_var=2.0, b_var=0.01, block_size=self.block_size)

    def fit(self, support: Tensor | sp.spmatrix, *, value: Any, seed: int) -> Scorer:
        x_s = _as_dense(support)
        f64 = self.float64 if self.float64 is not None else len(x_s) <= 2048
        alpha = krr_solve(self.kernel(x_s), x_s, reg=float(value), float64=f64)
        return lambda ctx: self.kernel(ctx.to(x_s.dtype), x_s) @ alpha

    def _run(self, x_s: Tensor, alphas: Sequence[Tensor], data: InteractionData, *, test: bool, batch_size: int,
             device: torch.device | str) -> list[dict[str, float]]:
        context, targets = data.context(test=test), data.targets(test=test)
        accs = [RankingAccumulator(data.item_propensity()) for _ in alphas]
        with torch.no_grad():
            for rows in data.user_batches(batch_size):
                k_ts = self.kernel(csr_rows_to_dense(context, rows, device=device), x_s)
                prepared = accs[0].prepare(context[rows], targets[rows])
                for acc, alpha in zip(accs, alphas):
                    acc.add((k_ts @ alpha.to(k_ts.dtype)).cpu(), context[rows], targets[rows], prepared)
        return [a.result() for a in accs]

    def validate(self, support: Tensor | sp.spmatrix, data: InteractionData, *, batch_size: int = 1024,
                 device: torch.device | str = "cpu") -> tuple[float, dict[str, float], dict[str, dict[str, float]],
                                                             Tensor]:
        """Validation metrics for every λ of the grid (one support kernel, one target kernel per user batch).

        Returns:
            ``(best λ, its validation metrics, metrics per λ, its dual coefficients α)``.
        """
        with torch.no_grad():
            x_s = _as_dense(support).to(device)
            k_ss = self.kernel(x_s)
            f64 = self.float64 if self.float64 is not None else len(x_s) <= 2048
            alphas = [krr_solve(k_ss, x_s, reg=float(r), float64=f64) for r in self.grid]
        vals = self._run(x_s, alphas, data, test=False, batch_size=batch_size, device=device)
        best = max(range(len(self.grid)), key=lambda j: vals[j][self.select_metric])
        return float(self.grid[best]), vals[best], {str(r): v for r, v in zip(self.grid, vals)}, alphas[best]

    def evaluate(self, support: Tensor | sp.spmatrix, data: InteractionData, *, seed: int = 0,
                 batch_size: int = 1024, device: torch.device | str = "cpu") -> LearnerResult:
        """λ chosen on validation HR@100 (all λ share the kernels), then test metrics."""
        import time

        start = time.perf_counter()
        reg, val, grid, alpha = self.validate(support, data, batch_size=batch_size, device=device)
        x_s = _as_dense(support).to(device)
        test = self._run(x_s, [alpha], data, test=True, batch_size=batch_size, device=device)[0]
        return LearnerResult(self.name, test, val, {"lambda": reg}, grid, time.perf_counter() - start)


@dataclass
class EASE(Learner):
    """EASE: closed-form item-item linear autoencoder with a zero diagonal.

    Args:
        grid: λ relative to the mean diagonal of the item Gram matrix ``XᵀX`` (so one grid fits full data and
            summaries of any scale), chosen on validation HR@100.
    """

    name: ClassVar[str] = "ease"
    grid: Sequence[float] = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
    select_metric: str = SELECT_METRIC

    def fit(self, support: Tensor | sp.spmatrix, *, value: Any, seed: int) -> Scorer:
        if isinstance(support, Tensor):
            x = support.detach().double()
            gram = x.T @ x
        else:
            gram = torch.from_numpy((sp.csr_matrix(support).T @ sp.csr_matrix(support)).toarray()).double()
        lam = float(value) * float(torch.diagonal(gram).mean().clamp_min(1e-12))
        p = torch.linalg.inv(gram + lam * torch.eye(len(gram), dtype=gram.dtype))
        b = -p / torch.diagonal(p)[None, :]
        b.fill_diagonal_(0.0)
        weights = b.float()
        return lambda ctx: ctx.to(weights.dtype) @ weights


def least_squares_fold_in(context: sp.csr_matrix, item_factors: np.ndarray, *, regularization: float,
                          alpha: float, item_bias: np.ndarray | None = None) -> np.ndarray:
    """User factors minimising ``Σ_i c_ui (p_ui - x·y_i - b_i)² + reg ||x||²`` with ``c_ui = 1 + (alpha r_ui - 1)``
    on observed items (ALS's confidence weighting, Hu et al. 2008) and ``c_ui = 1`` elsewhere.

    Shapes:
        context: ``(B, n_items)``; item_factors: ``(n_items, f)``; item_bias: ``(n_items,)``; returns ``(B, f)``.
    """
    y = torch.from_numpy(np.ascontiguousarray(item_factors, dtype=np.float64))
    bias = torch.zeros(len(y), dtype=torch.float64) if item_bias is None else torch.from_numpy(
        np.asarray(item_bias, dtype=np.float64))
    f = y.shape[1]
    base = y.T @ y + regularization * torch.eye(f, dtype=torch.float64)
    rhs_base = -(y.T @ bias)
    context = sp.csr_matrix(context)
    out = np.empty((context.shape[0], f), dtype=np.float64)
    for u in range(context.shape[0]):
        lo, hi = context.indptr[u], context.indptr[u + 1]
        idx = torch.from_numpy(context.indices[lo:hi].astype(np.int64))
        conf = alpha * torch.from_numpy(context.data[lo:hi].astype(np.float64))
        y_obs = y[idx]
        a = base + (y_obs * (conf - 1.0)[:, None]).T @ y_obs
        # Σ_i c_ui (p_ui - b_i) y_i = Σ_obs (c (1 - b_i) + b_i) y_i - Σ_all b_i y_i
        rhs = rhs_base + (conf * (1.0 - bias[idx]) + bias[idx]) @ y_obs
        out[u] = torch.linalg.solve(a, rhs).numpy()
    return out


@dataclass
class _ImplicitLearner(Learner):
    factors: int = 64
    regularization: float = 0.01
    iterations: int = 15
    alpha: float = 10.0
    grid: Sequence[Any] = ()

    def _model(self, seed: int) -> Any:
        raise NotImplementedError

    def fit(self, support: Tensor | sp.spmatrix, *, value: Any, seed: int) -> Scorer:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        model = self._model(seed)
        model.fit(_as_csr(support), show_progress=False)
        return self._scorer(model)

    def _scorer(self, model: Any) -> Scorer:
        raise NotImplementedError


@dataclass
class ALS(_ImplicitLearner):
    """implicit's AlternatingLeastSquares (CPU); real users folded in with ``recalculate_user``.

    Args:
        factors: latent dimension.
        regularization: L2 weight.
        iterations: ALS sweeps.
        alpha: confidence of positives (implicit multiplies the matrix by it).
    """

    name: ClassVar[str] = "als"

    def _model(self, seed: int) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(factors=self.factors, regularization=self.regularization, alpha=self.alpha,
                                       iterations=self.iterations, random_state=seed, num_threads=1)

    def _scorer(self, model: Any) -> Scorer:
        items = torch.from_numpy(np.asarray(model.item_factors))

        def score(ctx: Tensor) -> Tensor:
            rows = sp.csr_matrix(ctx.cpu().numpy().astype(np.float32))
            users = model.recalculate_user(np.arange(rows.shape[0]), rows)
            return torch.from_numpy(np.asarray(users)) @ items.T

        return score


@dataclass
class BPR(_ImplicitLearner):
    """implicit's BayesianPersonalizedRanking (CPU); real users folded in by confidence-weighted least squares
    against the learned item factors and item biases (BPR itself has no fold-in).

    Args:
        factors: latent dimension.
        learning_rate: SGD step.
        regularization: L2 weight.
        iterations: epochs.
        alpha: fold-in confidence of observed items.
    """

    name: ClassVar[str] = "bpr"
    learning_rate: float = 0.01
    iterations: int = 100
    fold_in_regularization: float = 0.1

    def _model(self, seed: int) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        return BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                           regularization=self.regularization, iterations=self.iterations,
                                           random_state=seed, num_threads=1)

    def _scorer(self, model: Any) -> Scorer:
        full = np.asarray(model.item_factors)  # (n_items, factors + 1): the last column is the item bias
        y, bias = full[:, :-1], full[:, -1]
        y_t = torch.from_numpy(np.ascontiguousarray(y))
        bias_t = torch.from_numpy(np.ascontiguousarray(bias))

        def score(ctx: Tensor) -> Tensor:
            rows = sp.csr_matrix(ctx.cpu().numpy().astype(np.float32))
            users = least_squares_fold_in(rows, y, regularization=self.fold_in_regularization, alpha=self.alpha,
                                          item_bias=bias)
            return torch.from_numpy(users).float() @ y_t.T + bias_t[None, :]

        return score


LEARNERS: dict[str, type[Learner]] = {"infinite-ae": InfiniteAE, "ease": EASE, "als": ALS, "bpr": BPR}


def get_learner(name: str, **kwargs: Any) -> Learner:
    """A learner by name (``infinite-ae``, ``ease``, ``als``, ``bpr``)."""
    if name not in LEARNERS:
        raise UnknownNameError("recsys learner", name, LEARNERS)
    return LEARNERS[name](**kwargs)
