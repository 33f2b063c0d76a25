from __future__ import annotations

import numpy as np
import pytest
import torch

from distill_core.data import Budget
from distill_core.errors import DataValidationError
from distill_core.runner import build_method, distill
from distill_recsys.data import build_interaction_data
from distill_recsys.evaluation import RecsysProtocol, evaluate_support
from distill_recsys.summary import SparseUserSummary

from .conftest import block_interactions

# 60 items: HR@100 would be 100 for every summary, so select on nDCG@10; 5 draws over 60 items keeps entries
# far below the clip (the paper's 200 draws over 3,706 ML-1M items give ~0.05 per entry)
FAST = {"steps": 24, "num_per_user": 5, "validate_every": 6, "lr_summary": 0.1, "sparse_k": 10,
        "select_metric": "nDCG@10"}
AE_ONLY = RecsysProtocol(learners=("infinite-ae",))


@pytest.fixture(scope="module")
def blocks():
    users, items = block_interactions(n_users=240, n_items=60, groups=6, p_in=0.5, p_out=0.02, seed=7)
    return build_interaction_data("blocks", users, items)


def _run(method, data, seed=0, budget=6, overrides=None, **kw):
    return distill(method, dataset="csv:unused", budget=Budget(total=budget), seed=seed, data=data, progress=False,
                   overrides=overrides, modality_name="recsys", **kw)


def test_loss_decreases_and_deterministic(blocks):
    a = _run("distill-cf", blocks, overrides=FAST, evaluate=False)
    b = _run("distill-cf", blocks, overrides=FAST, evaluate=False)
    losses = a.run.losses
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    sa, sb = a.artifact.summary, b.artifact.summary
    assert isinstance(sa, SparseUserSummary) and sa.budget == 6
    assert (sa.to_csr() != sb.to_csr()).nnz == 0
    assert a.artifact.extra["resolved_users"] == 6 and a.artifact.extra["val_history"]
    assert all(sa.to_csr().getnnz(axis=1) == 10)  # sparse_k entries per synthetic user


def test_beats_random_users(blocks):
    ours, rnd = [], []
    for seed in (0, 1, 2):
        dcf = _run("distill-cf", blocks, seed=seed, overrides=FAST, evaluate=False).artifact.summary
        base = _run("random-users", blocks, seed=seed, evaluate=False).artifact.summary
        ours.append(evaluate_support(dcf.to_csr(), blocks, protocol=AE_ONLY).mean)
        rnd.append(evaluate_support(base.to_csr(), blocks, protocol=AE_ONLY).mean)
    # six taste clusters and six users: random users miss clusters, distilled users cover them
    assert np.mean(ours) > np.mean(rnd) + 5, (ours, rnd)


def test_baselines_select_real_users(blocks):
    head = _run("head-users", blocks, budget=4, evaluate=False).artifact.summary
    counts = blocks.train.getnnz(axis=1)
    assert sorted(counts[head.source_users]) == sorted(np.sort(counts)[-4:])
    kc = _run("kcenter-users", blocks, budget=5, evaluate=False).artifact.summary
    assert len(set(kc.source_users.tolist())) == 5
    assert (kc.to_csr() != blocks.train[kc.source_users]).nnz == 0


def test_bad_budgets_are_refused(blocks):
    with pytest.raises(DataValidationError, match="larger than the 240 real users"):
        _run("random-users", blocks, budget=241, evaluate=False)
    with pytest.raises(DataValidationError, match="no classes"):
        distill("distill-cf", dataset="csv:unused", budget=Budget(ipc=2), data=blocks, progress=False)
    # the core's class-based random maps to random users
    out = _run("random", blocks, budget=3, evaluate=False)
    assert out.artifact.method == "random-users" and out.artifact.summary.budget == 3


def test_gradient_reaches_logits_through_chunks(blocks):
    """The chunked real side and the leaf trick give the same gradient as one full-batch graph."""
    from distill_core.kernels import fc_ntk
    from distill_core.objectives import krr_solve
    from distill_recsys.methods.distill_cf import DistillCF, DistillCFConfig

    cfg = DistillCFConfig(num_per_user=5, user_chunk=7)
    method = DistillCF(config=cfg)
    method.data = blocks
    logits = torch.randn(4, blocks.n_items, requires_grad=True)

    class Ctx:  # the StepContext parts run_step uses; update() only runs the backward (no optimizer step)
        device = torch.device("cpu")
        seed = 3
        generator = torch.Generator().manual_seed(0)

        @staticmethod
        def own_rows(idx):  # one process: every user of the batch
            return idx

        @staticmethod
        def update(loss, *, backward):
            backward()
            return loss

    class S:
        x = logits

    method.run_step(S(), Ctx())
    chunked = logits.grad.clone()
    logits.grad = None
    s = method.sample(logits, 3)
    alpha = krr_solve(fc_ntk(s), s, reg=method.reg)
    x = torch.from_numpy(blocks.train.toarray())
    loss = -(torch.log_softmax(fc_ntk(x, s) @ alpha, -1) * x).sum() / len(x)
    loss = loss + cfg.cardinality_reg * s.sum(1).mean() / blocks.mean_interactions
    loss.backward()
    assert torch.allclose(chunked, logits.grad, rtol=1e-3, atol=1e-7)


def test_real_users_densified_one_chunk_at_a_time(blocks, monkeypatch):
    import distill_recsys.methods.distill_cf as dcf

    seen: list[int] = []
    original = dcf.csr_rows_to_dense

    def spy(matrix, rows, **kw):
        out = original(matrix, rows, **kw)
        seen.append(out.shape[0])
        return out

    monkeypatch.setattr(dcf, "csr_rows_to_dense", spy)
    over = dict(FAST, steps=2, validate_every=0, user_chunk=32, batch_users=100)
    _run("distill-cf", blocks, overrides=over, evaluate=False)
    real_side = seen[1:]  # the first call builds the initial logits (budget rows)
    assert seen[0] == 6 and real_side and max(real_side) <= 32
    assert sum(real_side) == 2 * 100  # every step sees exactly batch_users real users


def test_sparse_refinement_keeps_pattern_and_lowers_loss(blocks):
    from distill_recsys.methods.distill_cf import DistillCF, DistillCFConfig
    from distill_recsys.summary import sparsify_rows

    method = DistillCF(config=DistillCFConfig(num_per_user=5))
    method.data = blocks
    sampled = method.sample(torch.zeros(6, blocks.n_items) + torch.rand(6, blocks.n_items), seed=0, exact=True)
    before = sparsify_rows(sampled, 10)
    after = method.refine_sparse(sampled, k=10, steps=15, lr=0.05, seed=0, device=torch.device("cpu"))
    assert (abs(before) > 0).toarray().tolist() == (abs(after) > 0).toarray().tolist() and after.min() >= 0

    def loss(m):
        s = torch.from_numpy(m.toarray()).requires_grad_(True)
        return method.reconstruction_backward(s, np.arange(blocks.n_users), torch.device("cpu"))

    assert loss(after) < loss(before)


def test_sparse_k_minus_one_keeps_the_dense_sample(blocks):
    out = _run("distill-cf", blocks, overrides=dict(FAST, steps=2, sparse_k=-1), evaluate=False)
    assert out.artifact.summary.to_csr().nnz == 6 * blocks.n_items  # τ = 10: every entry is positive


def test_default_saves_the_dense_sample_and_reports_its_top_k(blocks):
    over = {k: v for k, v in FAST.items() if k != "sparse_k"}
    out = _run("distill-cf", blocks, overrides=dict(over, steps=2), protocol_overrides={"model": "infinite-ae"})
    saved = out.artifact.summary
    assert out.artifact.config["sparse_k"] == -1  # the default: the reference's dense, continuous output
    assert saved.to_csr().nnz == 6 * blocks.n_items and saved.weighted
    rows = saved.to_csr().toarray().sum(1)
    assert np.allclose(rows, FAST["num_per_user"], rtol=1e-4)  # each row sums to num_per_user (no clip here)
    extra = out.artifact.extra
    k = round(blocks.mean_interactions)
    assert extra["sparse_top_k"] == k
    top = saved.top_k(k)
    assert all(top.to_csr().getnnz(axis=1) == k)
    assert np.allclose(top.to_csr().toarray().max(1), saved.to_csr().toarray().max(1))


def test_binary_summary_needs_a_sparse_k(blocks):
    with pytest.raises(DataValidationError, match="sparse_k"):
        _run("distill-cf", blocks, overrides=dict(FAST, steps=1, sparse_k=-1, binary_summary=True), evaluate=False)


def test_validation_schedule_and_initial_lambda(blocks):
    over = dict(FAST, steps=12, validate_every=5, validate_dense_until=5, log_freq=4)
    out = _run("distill-cf", blocks, overrides=over, evaluate=False)
    history = out.artifact.extra["val_history"]
    # the reference's schedule: the dense period (here up to 5), every log_freq-th step, and the last step
    assert [h["step"] for h in history] == [0, 4, 5, 8, 12]
    # step 0 validates the initial rows themselves (the first λ) and is no candidate for the best sample
    assert history[0]["support"].startswith("initial")
    assert out.artifact.extra["best_step"] > 0


def test_keep_metric_picks_the_kept_sample_only(blocks):
    """keep_metric chooses the kept step; λ is still picked by select_metric (same trajectory)."""
    over = dict(FAST, steps=12, validate_every=3, validate_dense_until=12, log_freq=0)
    base = _run("distill-cf", blocks, overrides=over, evaluate=False).artifact.extra
    kept = _run("distill-cf", blocks, overrides=dict(over, keep_metric="HR@10"), evaluate=False).artifact.extra
    strip = [{k: h[k] for k in ("step", "val_select", "lambda")} for h in base["val_history"]]
    assert strip == [{k: h[k] for k in ("step", "val_select", "lambda")} for h in kept["val_history"]]
    steps = [h for h in kept["val_history"] if h["step"] > 0]
    best = max(steps, key=lambda h: h["val_keep"])  # first maximum, as the strict '>' keeps the earliest
    assert kept["best_step"] == best["step"]
    assert "HR@10" in kept["selection"] and "nDCG@10" in kept["selection"]


def test_keep_every_adds_candidates_without_moving_the_trajectory(blocks):
    """keep_every validations compete for the kept sample but never change the training λ."""
    over = dict(FAST, steps=12, validate_every=6, validate_dense_until=12, log_freq=0, keep_metric="HR@10")
    base = _run("distill-cf", blocks, overrides=over, evaluate=False).artifact.extra
    dense = _run("distill-cf", blocks, overrides=dict(over, keep_every=2), evaluate=False).artifact.extra
    hist = dense["val_history"]
    assert [h["step"] for h in hist] == [0, 2, 4, 6, 8, 10, 12]
    assert [h["step"] for h in hist if not h.get("keep_only")] == [h["step"] for h in base["val_history"]]
    # same λ schedule, hence the same samples and scores at the shared steps
    shared = {h["step"]: (h["lambda"], h["val_keep"]) for h in base["val_history"]}
    assert all(shared[h["step"]] == (h["lambda"], h["val_keep"]) for h in hist if h["step"] in shared)
    best = max((h for h in hist if h["step"] > 0), key=lambda h: h["val_keep"])
    assert dense["best_step"] == best["step"]


def test_unknown_selection_metric_is_refused_before_any_work() -> None:
    with pytest.raises(DataValidationError, match="keep_metric='ndcg10' is not a validation metric"):
        build_method("distill-cf", {"keep_metric": "ndcg10"})
    with pytest.raises(DataValidationError, match="nDCG@10"):
        build_method("distill-cf", {"select_metric": "AUC"})
