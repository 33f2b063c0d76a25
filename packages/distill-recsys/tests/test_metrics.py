from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from distill_recsys.metrics import RankingAccumulator, ranking_metrics


def test_metrics_match_hand_computed_values():
    scores = torch.tensor([[9.0, 5.0, 4.0, 3.0, 8.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    context = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], dtype=np.float32))
    targets = sp.csr_matrix(np.array([[0, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=np.float32))  # user 1: none
    w = np.array([1.0, 1.0, 3.0, 1.0, 2.0, 1.0])
    m = ranking_metrics(scores, context, targets, w, ks=(2, 3))
    # ranking after masking item 0: 4, 1, 2, 3, 5
    assert m["HR@2"] == pytest.approx(50.0)
    assert m["nDCG@2"] == pytest.approx(100 / (1 + 1 / math.log2(3)), abs=1e-3)
    assert m["PSP@2"] == pytest.approx(100 * (2 / 2) / (3 + 2), abs=1e-3)
    assert m["HR@3"] == pytest.approx(100.0)
    assert m["nDCG@3"] == pytest.approx(100 * (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)), abs=1e-3)
    assert m["PSP@3"] == pytest.approx(100 * ((2 + 3) / 2) / (3 + 2), abs=1e-3)


def test_masked_items_never_counted_and_batches_add_up():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 25)) < 0.3).astype(np.float32)
    ctx = sp.csr_matrix(x * (rng.random(x.shape) < 0.6))
    tgt = sp.csr_matrix(x - ctx.toarray())
    scores = torch.from_numpy(rng.standard_normal((40, 25)).astype(np.float32))
    whole = ranking_metrics(scores, ctx, tgt, np.ones(25))
    acc = RankingAccumulator(np.ones(25))
    for lo in range(0, 40, 7):
        acc.add(scores[lo:lo + 7], ctx[lo:lo + 7], tgt[lo:lo + 7])
    assert acc.result() == pytest.approx(whole)
    # a perfect scorer (targets highest; masked context items higher still) gets HR = nDCG = 100; PSP keeps the
    # reference's asymmetric normalisation, so with unit propensities it is mean(1 / min(|P|, k))
    perfect = torch.from_numpy(tgt.toarray() * 10 + ctx.toarray() * 20)
    m = ranking_metrics(perfect, ctx, tgt, np.ones(25))
    assert m["HR@10"] == m["nDCG@10"] == m["HR@100"] == m["nDCG@100"] == pytest.approx(100.0)
    npos = tgt.getnnz(axis=1)
    npos = npos[npos > 0]
    assert m["PSP@10"] == pytest.approx(100 * np.mean(1 / np.minimum(npos, 10)), abs=1e-3)


def test_hr_and_ndcg_against_numpy_reference_and_implicit_precision():
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k

    rng = np.random.default_rng(1)
    x = (rng.random((60, 40)) < 0.2).astype(np.float32)
    train = sp.csr_matrix(x * (rng.random(x.shape) < 0.7))
    test = sp.csr_matrix(x - train.toarray())
    model = AlternatingLeastSquares(factors=8, iterations=5, random_state=0, num_threads=1)
    model.fit(train, show_progress=False)
    theirs = ranking_metrics_at_k(model, train, test, K=5, show_progress=False, num_threads=1)
    scores = torch.from_numpy(model.user_factors @ model.item_factors.T)
    ours = ranking_metrics(scores, train, test, np.ones(40), ks=(5,))
    # implicit's precision pools hits over users (Σ hits / Σ min(|P|, K)); the paper's HR@k averages per user
    masked = scores.clone()
    masked[torch.from_numpy(train.toarray() > 0)] = -torch.inf
    top = masked.topk(5, dim=1).indices.numpy()
    t = test.toarray() > 0
    hits = np.array([t[u, top[u]].sum() for u in range(60)])
    npos = t.sum(1)
    users = npos > 0
    assert theirs["precision"] == pytest.approx(hits[users].sum() / np.minimum(npos[users], 5).sum())
    assert ours["HR@5"] == pytest.approx(100 * np.mean(hits[users] / np.minimum(npos[users], 5)), abs=1e-3)
    disc = 1 / np.log2(np.arange(5) + 2)
    ndcg = [(t[u, top[u]] * disc).sum() / disc[:min(npos[u], 5)].sum() for u in np.nonzero(users)[0]]
    assert ours["nDCG@5"] == pytest.approx(100 * np.mean(ndcg), abs=1e-3)
