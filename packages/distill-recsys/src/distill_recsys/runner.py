"""The recommender run path: data -> budget (users) -> method -> best-by-validation summary -> evaluation ->
artifact. :meth:`RecsysModality.run` routes ``distill run METHOD --dataset ml-1m --budget 500`` here, because the
core's classification path (classes, per-class budgets, trained classifiers) does not describe user-item data.

The core's :class:`~distill_core.distiller.Distiller` still runs the outer loop (per-step seeding, checkpoints and
resume, NaN rollback, progress bar); a validation callback re-picks the KRR ridge and keeps the best sample.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from distill_core.artifact import Artifact
from distill_core.data import Budget
from distill_core.distiller import Callback, Distiller, RunResult, step_seed
from distill_core.method import Method
from distill_core.runner import RunOutcome

from .data import InteractionData
from .evaluation import RecsysProtocol, evaluate_support
from .learners import InfiniteAE
from .methods._common import resolve_user_budget
from .methods.distill_cf import DistillCF, sparsify_rows
from .summary import SparseUserSummary

__all__ = ["ValidationCallback", "run_recsys"]

logger = logging.getLogger(__name__)


class ValidationCallback(Callback):
    """Distill-CF's model selection: every ``every`` steps sample the summary, pick the KRR ridge on validation
    HR@100 (used by the following steps) and keep the best sample.

    Before the first step the ridge is picked on the initial logits themselves (the binary rows of the sampled real
    users), not on a Gumbel sample of them, and the initialisation is not a candidate for the best sample: the
    reference validates ``params['x']`` before training and keeps ``final_data`` only from training steps
    (noveens/distill_cf distill.py ``train_complete``). On ML-1M 500 users this first ridge is 1.0, against 1e-3
    picked on a τ = 10 sample of the same rows.
    """

    def __init__(self, method: DistillCF, data: InteractionData, *, every: int, device: torch.device) -> None:
        self.method, self.data, self.every, self.device = method, data, every, device
        self.metric = method.config.select_metric
        self.keep = method.keep_by
        self.learner = InfiniteAE(grid=tuple(method.config.reg_grid), depth=method.config.depth,
                                  select_metric=self.metric)

    def validate(self, distiller: Distiller, step: int, *, initial: bool = False, set_reg: bool = True) -> None:
        """Score the current sample on validation; ``set_reg=False`` (a ``keep_every`` validation) leaves the
        training λ as it is, so the sample only competes for the kept one."""
        start = time.perf_counter()
        with torch.no_grad():
            logits = distiller.summary.x.detach()
            sampled = logits if initial else self.method.sample(logits, step_seed(distiller.seed, 10**9 + step),
                                                                exact=True)
        reg, val, _, _ = self.learner.validate(sampled, self.data, device=self.device)
        if set_reg:
            self.method.reg = reg
        entry = {"step": step, "val_HR@100": val["HR@100"], "val_nDCG@10": val["nDCG@10"],
                 "val_select": val[self.metric], "val_keep": val[self.keep], "lambda": reg,
                 "validate_s": round(time.perf_counter() - start, 2)}
        if not set_reg:
            entry["keep_only"] = True
        if initial:
            entry["support"] = "initial logits (not sampled)"
        self.method.history.append(entry)
        if initial:
            logger.info("distill-cf initial rows: validation HR@100 %.2f nDCG@10 %.2f (lambda %g)", val["HR@100"],
                        val["nDCG@10"], reg)
            return
        best = self.method.best
        if not best or val[self.keep] > best.get("val_keep", best["val_select"]):
            self.method.best = {"step": step, "val_HR@100": val["HR@100"], "val_select": val[self.metric],
                                "val_keep": val[self.keep], "select_metric": self.metric,
                                "keep_metric": self.keep, "lambda": reg, "sample": sampled.cpu()}
        logger.info("distill-cf step %d: validation HR@100 %.2f nDCG@10 %.2f (lambda %g)", step, val["HR@100"],
                    val["nDCG@10"], reg)

    def before_run(self, distiller: Distiller) -> None:
        if not self.method.history:
            self.validate(distiller, distiller.step, initial=True)

    def due(self, step: int) -> bool:
        """Whether step ``step`` (1-based) is validated: the reference's ``i in [25, 50, ..., 200] or i % log_freq
        == 0`` (noveens/distill_cf distill.py), generalised by ``validate_every``, ``validate_dense_until`` and
        ``log_freq``; the last step always is."""
        cfg = self.method.config
        return ((self.every > 0 and step % self.every == 0 and step <= cfg.validate_dense_until)
                or (cfg.log_freq > 0 and step % cfg.log_freq == 0) or step == cfg.steps)

    def after_step(self, distiller: Distiller, step: int, loss: float) -> None:
        every = self.method.config.keep_every
        if self.due(step + 1):
            self.validate(distiller, step + 1)
        elif every > 0 and (step + 1) % every == 0:
            self.validate(distiller, step + 1, set_reg=False)


def run_recsys(
    method: Method[Any],
    modality: Any,
    *,
    dataset: str,
    budget: Budget,
    seed: int = 0,
    root: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    evaluate: bool = True,
    protocol: RecsysProtocol | None = None,
    checkpoint_every: int = 100,
    progress: bool = True,
    device: str | torch.device = "cpu",
    data: InteractionData | None = None,
) -> RunOutcome:
    """Distill (or select) ``budget`` users of ``dataset`` with ``method``, evaluate and save the artifact.

    The resolved budget is logged and stored (lesson 10); the evaluation records the learners, seeds and the
    validation-chosen hyper-parameters (lesson 11).
    """
    device = torch.device(device)
    t0 = time.perf_counter()
    if data is None:
        data = modality.load_dataset(dataset, root=root)
    assert data is not None
    n_users = resolve_user_budget(budget, data)
    logger.info("budget %s resolves to %d synthetic users (of %d real users, %d items)", budget.describe(), n_users,
                data.n_users, data.n_items)
    t_load = time.perf_counter() - t0
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    summary = method.init_summary(data, budget=budget, modality=modality, generator=generator)  # type: ignore[arg-type]
    extra: dict[str, Any] = {"budget_request": budget.describe(), "budget_per_class": [n_users],
                             "resolved_users": n_users, "selection": "final"}
    if isinstance(method, DistillCF):
        callback = ValidationCallback(method, data, every=method.config.validate_every, device=device)
        distiller = Distiller(method=method, data=data, summary=summary, modality=modality, seed=seed,  # type: ignore[arg-type]
                              out_dir=out_dir, checkpoint_every=checkpoint_every, callbacks=[callback],
                              progress=progress, device=device)
        cpu0 = time.process_time()
        result = distiller.run(resume=resume)
        if not method.best:  # no training step ran (steps=0): the initial rows' sample is the only candidate
            callback.validate(distiller, distiller.step)
        cpu_s = time.process_time() - cpu0
        best = method.best
        final = method.final_summary(best["sample"], data)
        extra.update({
            "selection": f"best by validation {method.keep_by} "
                         f"(infinity-AE, lambda re-picked by validation {method.config.select_metric} at each "
                         "validation)",
            "best_step": best["step"], "best_val_HR@100": best["val_HR@100"], "lambda": best["lambda"],
            "val_history": method.history, "sparse_k": int(final.nnz / max(1, final.budget)),
            "distill_wall_s": round(result.wall_s, 3), "steps_per_s": round(result.steps_per_s, 4),
            "s_per_step": round(result.wall_s / max(1, result.steps - (result.resumed_from or 0)), 4),
            # CPU seconds (all threads of this process; includes the validations): robust on a shared machine
            "distill_cpu_s": round(cpu_s, 2),
            "validate_s": round(sum(h["validate_s"] for h in method.history), 2),
            "final_loss": result.losses[-1] if result.losses else None, "resumed_from": result.resumed_from,
        })
        dense_sample = best["sample"]
    else:
        final = summary
        result = RunResult(summary, 0, [], 0.0, None)
        dense_sample = None
    artifact = Artifact(summary=final, method=method.name, modality=modality.name, config=method.config.to_dict(),
                        dataset=data.describe(), seed=seed, steps=result.steps, extra=extra)
    evaluation = None
    if evaluate:
        evaluation = evaluate_support(final.to_csr(), data, protocol=protocol, seed=seed, device=device)
        artifact.evaluations.append(evaluation.to_dict())
        if dense_sample is not None:  # the other form of the same sample, judged by infinity-AE
            ae_only = RecsysProtocol(learners=("infinite-ae",))
            if isinstance(method, DistillCF) and method.config.sparse_k < 0:
                k = max(1, round(data.mean_interactions))
                sparse = sparsify_rows(dense_sample, k)
                extra["sparse_top_k"] = k
                extra["sparse_sample_evaluation"] = evaluate_support(sparse, data, protocol=ae_only, seed=seed,
                                                                     device=device).to_dict()
            else:
                extra["dense_sample_evaluation"] = evaluate_support(dense_sample, data, protocol=ae_only, seed=seed,
                                                                    device=device).to_dict()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        artifact.save(out)
    return RunOutcome(artifact, result, evaluation, out, data, None,  # type: ignore[arg-type]
                      {"load_s": t_load, "distill_s": result.wall_s})


def summary_of(artifact: Artifact) -> SparseUserSummary:
    """The artifact's sparse summary (fails clearly for non-recommender artifacts)."""
    from distill_core.errors import ArtifactError

    if not isinstance(artifact.summary, SparseUserSummary):
        raise ArtifactError(f"the artifact holds a {artifact.summary.summary_type!r} summary, not a recommender "
                            "(sparse-users) summary")
    return artifact.summary
