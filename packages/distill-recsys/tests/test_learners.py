from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from distill_recsys.data import build_interaction_data
from distill_recsys.learners import ALS, EASE, InfiniteAE, least_squares_fold_in

from .conftest import block_interactions


def _ntk_by_hand(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """The ∞-AE kernel written from the infinity-AE paper's formula, entry by entry (σ_w² = 2, σ_b² = 0.01)."""
    d, wv, bv = x1.shape[1], 2.0, 0.01
    out = np.zeros((len(x1), len(x2)))
    for i, a in enumerate(x1):
        for j, b in enumerate(x2):
            s_ab, s_aa, s_bb = (wv * a @ b / d + bv), (wv * a @ a / d + bv), (wv * b @ b / d + bv)
            theta = math.acos(max(-1.0, min(1.0, s_ab / math.sqrt(s_aa * s_bb))))
            relu = (math.sqrt(max(s_aa * s_bb - s_ab**2, 0.0)) + (math.pi - theta) * s_ab) / (2 * math.pi)
            dot = (math.pi - theta) / (2 * math.pi)
            out[i, j] = (wv * relu + bv) + wv * dot * s_ab
    return out


def test_infinite_ae_matches_direct_solve():
    rng = np.random.default_rng(0)
    support = (rng.random((12, 20)) < 0.3).astype(np.float64)
    users = (rng.random((5, 20)) < 0.3).astype(np.float64)
    reg = 0.1
    k_ss, k_us = _ntk_by_hand(support, support), _ntk_by_hand(users, support)
    lam = reg * np.trace(k_ss) / len(k_ss)
    expected = k_us @ torch.linalg.solve(torch.from_numpy(k_ss + lam * np.eye(12)), torch.from_numpy(support)).numpy()
    scorer = InfiniteAE(float64=True).fit(torch.from_numpy(support).float(), value=reg, seed=0)
    got = scorer(torch.from_numpy(users).float()).numpy()
    assert np.allclose(got, expected, rtol=2e-4, atol=1e-5)


def test_ease_matches_column_wise_constrained_ridge():
    rng = np.random.default_rng(1)
    x = (rng.random((30, 8)) < 0.4).astype(np.float64)
    rel = 0.5
    gram = x.T @ x
    lam = rel * np.diag(gram).mean()
    b = np.zeros((8, 8))
    for j in range(8):  # B_jj = 0: regress column j on the other columns
        others = [i for i in range(8) if i != j]
        xo = x[:, others]
        b[others, j] = np.linalg.solve(xo.T @ xo + lam * np.eye(7), xo.T @ x[:, j])
    scorer = EASE().fit(torch.from_numpy(x).float(), value=rel, seed=0)
    assert np.allclose(scorer(torch.eye(8)).numpy(), b, atol=1e-4)


def test_fold_in_equals_implicit_recalculate_user():
    rng = np.random.default_rng(2)
    train = sp.csr_matrix((rng.random((40, 25)) < 0.3).astype(np.float32))
    als = ALS(factors=6, iterations=3, alpha=5.0)
    from implicit.cpu.als import AlternatingLeastSquares

    model = AlternatingLeastSquares(factors=6, iterations=3, alpha=5.0, regularization=0.01, random_state=0,
                                    num_threads=1, use_cg=False)
    model.fit(train, show_progress=False)
    ours = least_squares_fold_in(train[:10], model.item_factors, regularization=0.01, alpha=5.0)
    theirs = model.recalculate_user(np.arange(10), train[:10])
    assert np.allclose(ours, theirs, atol=1e-3)
    assert als.name == "als"


def test_learners_rank_cluster_items_first():
    users, items = block_interactions(n_users=60, n_items=30, seed=3)
    data = build_interaction_data("blocks", users, items)
    for learner in (InfiniteAE(), EASE(), ALS(factors=4, iterations=5)):
        result = learner.evaluate(data.train, data, seed=0)
        # clustered tastes are easy: far above a random ranking's HR@10 (about 10/30 of held-out items)
        assert result.test["HR@10"] > 55, (learner.name, result.test)
        assert result.chosen


def test_infinite_ae_grid_choice_is_recorded():
    users, items = block_interactions(seed=4)
    data = build_interaction_data("blocks", users, items)
    res = InfiniteAE(grid=(1e-3, 1.0)).evaluate(data.train, data)
    assert res.chosen["lambda"] in (1e-3, 1.0) and set(res.grid) == {"0.001", "1.0"}
    with pytest.raises(ValueError):
        InfiniteAE(grid=(-1.0,)).evaluate(data.train, data)
