"""Distill-CF: synthetic users distilled through infinity-AE (Sachdeva, Dhaliwal, Wu & McAuley, NeurIPS 2022).

Paper: "Infinite Recommendation Networks: A Data-Centric Approach", https://arxiv.org/abs/2206.02626; reference
code noveens/distill_cf (its defaults are the defaults here).

Algorithm (one outer step):

1. The summary is a learnable logit matrix ``L`` (``budget x n_items``), initialised with the binary training rows
   of random real users. A sampled summary is ``S = hardtanh(Σ_{s<num_per_user} softmax((L + g_s)/τ))`` with Gumbel
   noise ``g_s`` (:func:`~distill_recsys.gumbel.multi_gumbel_softmax`).
2. infinity-AE fits ``S`` in closed form: ``α = (K_SS + λ tr(K_SS)/n I)^-1 S`` with the NTK of an infinitely wide
   one-hidden-layer ReLU autoencoder (distill-core's :func:`~distill_core.kernels.fc_ntk`, ``krr_solve``).
3. Real users ``X`` (their training rows) are reconstructed, ``P = K_XS α``, and the loss is the multinomial
   likelihood ``mean_u -Σ_i X_ui log softmax(P_u)_i`` plus ``cardinality_reg · mean_row_sum(S) / mean_interactions``.
4. Adam on ``L``.

Under ``torch.distributed`` (``torchrun``) the step's user batch is split in contiguous blocks over the ranks
(``shards_targets``, :meth:`~distill_core.method.StepContext.own_rows`): every rank draws the same batch and the
same Gumbel sample, reconstructs its block of users and back-propagates its share, and the logits' gradient and
the loss are summed over the ranks before the update. The validations and the refinement of a sparse summary run
on every rank alike.

Memory is bounded by the user batch: real users are densified ``user_chunk`` rows at a time; their gradients are
accumulated into ``S`` and ``α`` (leaves), and one backward pass then reaches ``L`` through the solve and the
sampler, whose noise is regenerated rather than stored. λ is re-picked on validation HR@100 at every validation
and the best sampled summary by validation HR@100 is kept (the reference's model selection, on its schedule: steps
25, 50, ..., 200 and every 40th step). This selection is distill-core's
:class:`~distill_core.selection.ModelSelection` (:meth:`DistillCF.callbacks`) with :meth:`DistillCF.validate` as its
validation; the runner saves :meth:`DistillCF.finalize` of the kept sample.

The saved summary is, by default, the best sampled ``S`` itself stored as CSR (``sparse_k=-1``): the reference saves
and evaluates exactly this dense, continuous sample (``final_data = multi_gumbel_sampling(key, params)[0]`` in
noveens/distill_cf distill.py; with τ = 10 every entry is positive and each row sums to ``num_per_user``).
``sparse_k > 0`` (or 0: the real users' mean interactions) keeps only the largest entries of each row (weighted,
or binary): a genuinely sparse summary, but the information of a τ = 10 sample is spread over all items, so on
ML-1M 500 users the top-131 summary scores below 500 random users (benchmarks/recsys/results.md); use it for
exports that must be sparse, and :func:`~distill_recsys.summary.sparsify_rows` / :meth:`SparseUserSummary.top_k` to
derive it later.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from distill_core.callbacks import Callback, Loop
from distill_core.data import Budget
from distill_core.distiller import step_seed
from distill_core.distributed import world
from distill_core.errors import DataValidationError
from distill_core.kernels import fc_ntk
from distill_core.method import Method, MethodConfig, StepContext
from distill_core.modality import Modality
from distill_core.objectives import krr_solve
from distill_core.protocol import EvalProtocol
from distill_core.selection import ModelSelection

from ..data import InteractionData, csr_rows_to_dense
from ..evaluation import RecsysProtocol
from ..gumbel import multi_gumbel_softmax
from ..learners import InfiniteAE
from ..metrics import metric_names
from ..summary import SparseUserSummary, UserLogitSummary, sparsify_rows
from ._common import active_users, random_users

__all__ = ["DistillCF", "DistillCFConfig", "DistillCFSelection"]

logger = logging.getLogger(__name__)


@dataclass
class DistillCFConfig(MethodConfig):
    """Distill-CF options; defaults are the reference's (noveens/distill_cf hyper_params.py)."""

    steps: int = field(default=500, metadata={"help": "outer steps (paper: 500, best by validation kept)"})
    lr_summary: float = field(default=0.04, metadata={"help": "Adam learning rate of the logits (paper: 0.04)"})
    optimizer: Literal["sgd", "adam"] = field(default="adam", metadata={"help": "optimizer (paper: Adam)"})
    num_per_user: int = field(default=200, metadata={"help": "Gumbel-softmax draws summed per synthetic user"})
    gumbel_tau: float = field(default=10.0, metadata={"help": "Gumbel-softmax temperature (paper: 10)"})
    gumbel_draws: int = field(default=0, metadata={
        "help": "draws sampled per training step (0: num_per_user, the paper); fewer are rescaled to the same "
                "expected sum (faster, noisier gradient). Validation and the saved summary always use num_per_user"})
    gumbel_chunk: int = field(default=4, metadata={"help": "draws generated at once (memory chunk x budget x items)"})
    cardinality_reg: float = field(default=1e-3, metadata={"help": "weight of the cardinality (row-sum) penalty"})
    depth: int = field(default=1, metadata={"help": "hidden layers of the infinity-AE (paper: 1)"})
    batch_users: int = field(default=-1, metadata={
        "help": "real users per step (-1: all, the paper's full batch)"})
    user_chunk: int = field(default=1024, metadata={
        "help": "real users densified at once (bounds memory; the gradient is accumulated over chunks)"})
    reg_grid: tuple[float, ...] = field(default=(1e-5, 1e-3, 0.1, 1.0, 5.0, 50.0), metadata={
        "help": "KRR ridge values (x tr(K)/n) searched on validation HR@100"})
    select_metric: str = field(default="HR@100", metadata={
        "help": "validation metric that picks λ and the best sample (paper: HR@100; use nDCG@10 when there are "
                "fewer than ~200 items)"})
    keep_metric: str = field(default="", metadata={
        "help": "validation metric that picks the kept sample ('': select_metric, the paper). λ is still picked "
                "by select_metric, so the training trajectory is unchanged"})
    validate_every: int = field(default=25, metadata={
        "help": "steps between validations up to step validate_dense_until (0: none; the last step is always "
                "validated)"})
    validate_dense_until: int = field(default=200, metadata={
        "help": "last step of the validate_every schedule (reference: 25, 50, ..., 200)"})
    log_freq: int = field(default=40, metadata={
        "help": "also validate every log_freq steps, all run long (reference log_freq: 40; 0: off)"})
    keep_every: int = field(default=0, metadata={
        "help": "extra validations every keep_every steps that only compete for the kept sample: λ is not re-picked "
                "for training there, so the trajectory stays the reference's (0: none)"})
    float64: bool = field(default=False, metadata={"help": "solve the support system in double precision"})
    sparse_k: int = field(default=-1, metadata={
        "help": "entries kept per synthetic user in the saved summary (-1: all, the dense sample the reference "
                "saves and evaluates, stored as CSR; 0: the real users' mean interactions, rounded; k: the k "
                "largest, a sparse summary that loses quality)"})
    sparse_refine_steps: int = field(default=0, metadata={
        "help": "Adam steps that re-learn the weights of the sparse summary (its top-k pattern fixed) with the same "
                "loss before saving (0: keep the sampled weights)"})
    sparse_refine_lr: float = field(default=0.1, metadata={"help": "learning rate of the sparse-weight refinement"})
    binary_summary: bool = field(default=False, metadata={
        "help": "save 0/1 interactions instead of the sampled weights"})
    init: Literal["real", "noise"] = field(default="real", metadata={"help": "init from random real users' rows"})


class DistillCFSelection(ModelSelection):
    """Distill-CF's model selection (distill-core's :class:`~distill_core.selection.ModelSelection`, with
    :meth:`DistillCF.validate`). Its manifest record also holds the kept sample's step, validation HR@100 and λ
    (``best_step``, ``best_val_HR@100``, ``lambda``), the seconds of all validations (``validate_s``), the seconds
    per outer step with the validations (``s_per_step``); the saved summary's facts come from
    :meth:`DistillCF.extra_metadata`, which the core's runner merges in."""

    def __init__(self, method: DistillCF, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.method = method
        self._first_step = 0
        self._steps = 0
        self._start = 0.0
        self._wall = 0.0

    def before_run(self, distiller: Loop) -> None:
        super().before_run(distiller)  # the initial validation, before the outer loop's clock starts
        self._first_step = distiller.step
        self._start = time.perf_counter()

    def after_run(self, distiller: Loop) -> None:
        self._wall = time.perf_counter() - self._start
        self._steps = distiller.step - self._first_step
        super().after_run(distiller)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        kept = next((h for h in reversed(self.history)
                     if h["step"] == self.best.get("step") and h.get("candidate", True)), None)
        if kept is not None:
            out.update({"best_step": kept["step"], "best_val_HR@100": kept["val_HR@100"], "lambda": kept["lambda"]})
        out["validate_s"] = round(sum(h.get("validate_s", 0.0) for h in self.history), 2)
        out["s_per_step"] = round(self._wall / max(1, self._steps), 4)
        return out


class DistillCF(Method[DistillCFConfig]):
    """Distill-CF: Gumbel-sampled synthetic users fit through infinity-AE (Sachdeva et al. 2022)."""

    modality = "recsys"
    paper = "https://arxiv.org/abs/2206.02626"
    shards_targets = True  # under torch.distributed each rank reconstructs its block of the step's users

    def __init__(self, *, config: DistillCFConfig | None = None) -> None:
        super().__init__(config=config)
        known = metric_names()
        for name in ("select_metric", "keep_metric"):
            value = getattr(self.config, name)
            if value not in known and not (name == "keep_metric" and value == ""):
                raise DataValidationError(f"distill-cf {name}={value!r} is not a validation metric; use one of "
                                          f"{', '.join(known)}")
        self.reg: float = 1.0  # the KRR ridge of the training steps, re-picked by :meth:`validate`
        self.data: InteractionData | None = None
        self.selection: DistillCFSelection | None = None
        self._learner: InfiniteAE | None = None
        self._device = torch.device("cpu")
        self._sample: Tensor | None = None  # the sample of the last validation: the candidate to keep
        self._saved: dict[str, Any] = {}  # what finalize made: the kept sample, the saved summary, data facts

    @property
    def keep_by(self) -> str:
        """The validation metric that picks the kept sample (``keep_metric``, else ``select_metric``)."""
        return self.config.keep_metric or self.config.select_metric

    # -- summary ------------------------------------------------------------------------------------------------
    def init_summary(self, data: InteractionData, *, budget: Budget,  # type: ignore[override]
                     modality: Modality, generator: torch.Generator) -> UserLogitSummary:
        """Logits = the binary training rows of ``budget`` random real users with training data."""
        n, active = active_users(budget, data, what="synthetic users")
        pick = random_users(active, n, generator)
        logits = csr_rows_to_dense(data.train, np.sort(pick))
        if self.config.init == "noise":
            logits.normal_(generator=generator)
        return UserLogitSummary(x=logits)

    # -- pieces -------------------------------------------------------------------------------------------------
    def kernel(self, x1: Tensor, x2: Tensor | None = None) -> Tensor:
        return fc_ntk(x1, x2, depth=self.config.depth, w_var=2.0, b_var=0.01)

    def sample(self, logits: Tensor, seed: int, *, exact: bool = False) -> Tensor:
        """One sampled summary ``S`` (differentiable in ``logits``).

        Training steps draw ``gumbel_draws`` samples (when set); ``exact=True`` (validation, the saved summary)
        always sums the paper's ``num_per_user`` draws.
        """
        cfg = self.config
        draws = None if exact else (cfg.gumbel_draws or None)
        return multi_gumbel_softmax(logits, num_per_user=cfg.num_per_user, tau=cfg.gumbel_tau, seed=seed,
                                    draws=draws, chunk=cfg.gumbel_chunk)

    def setup(self, summary: Any, data: Any, device: torch.device) -> None:
        if not isinstance(data, InteractionData):
            raise DataValidationError("distill-cf needs implicit-feedback data (an InteractionData), e.g. "
                                      "--dataset ml-1m or csv:PATH")
        if self.config.binary_summary and self.config.sparse_k < 0:
            raise DataValidationError("binary_summary=true needs a sparse summary: set sparse_k to the entries per "
                                      "synthetic user to keep (0: the real users' mean), not -1 (every entry)")
        self.data = data

    # -- the step -----------------------------------------------------------------------------------------------
    def run_step(self, summary: Any, ctx: StepContext) -> float:
        cfg, data = self.config, self.data
        assert data is not None
        device = ctx.device
        if cfg.batch_users == -1 or cfg.batch_users >= data.n_users:
            users = np.arange(data.n_users)
        else:
            users = np.sort(torch.randperm(data.n_users, generator=ctx.generator)[:cfg.batch_users].numpy())
        n_users = len(users)
        own = ctx.own_rows(torch.from_numpy(users)).numpy()  # under torch.distributed: this rank's block of users
        sampled = self.sample(summary.x, ctx.seed)
        s_leaf = sampled.detach().requires_grad_(True)
        total = self.reconstruction_backward(s_leaf, own, device, n_users=n_users,
                                             regularize=world()[0] == 0)  # the cardinality term once
        grad_s = s_leaf.grad if s_leaf.grad is not None else torch.zeros_like(s_leaf)  # a rank with no users
        # the loss's gradient w.r.t. the sample (summed over the user chunks) reaches the logits through the sampler
        return ctx.update(total, backward=lambda: sampled.backward(grad_s))

    def reconstruction_backward(self, s_leaf: Tensor, users: np.ndarray, device: torch.device, *,
                                n_users: int | None = None, regularize: bool = True) -> float:
        """infinity-AE loss of the real ``users`` given the support ``s_leaf`` (a leaf); accumulates its gradient
        into ``s_leaf.grad`` chunk by chunk (memory of one ``user_chunk``) and returns the loss value.

        ``n_users`` (default ``len(users)``) is the size of the whole user batch when ``users`` is one block of it
        (a rank's share under ``torch.distributed``): the likelihood is averaged over ``n_users``, and only the
        block with ``regularize`` adds the cardinality term, so the blocks' losses and gradients sum to the whole
        batch's. The gradient through the solve is linear in ``α``'s gradient, so each block may take it alone.
        """
        cfg, data = self.config, self.data
        assert data is not None
        k_ss = self.kernel(s_leaf)
        alpha = krr_solve(k_ss, s_leaf, reg=self.reg, float64=cfg.float64)
        alpha_leaf = alpha.detach().requires_grad_(True)
        total = 0.0
        for start in range(0, len(users), cfg.user_chunk):
            rows = users[start:start + cfg.user_chunk]
            x_real = csr_rows_to_dense(data.train, rows, device=device)
            pred = self.kernel(x_real, s_leaf) @ alpha_leaf
            loss = -(torch.log_softmax(pred, dim=-1) * x_real).sum() / (n_users or len(users))
            loss.backward()
            total += float(loss.detach())
        if regularize:
            card = cfg.cardinality_reg * s_leaf.sum(1).mean() / max(data.mean_interactions, 1e-12)
            card.backward()
            total += float(card.detach())
        if alpha_leaf.grad is not None:  # chain rule through the solve (α) and the support kernel
            torch.autograd.backward([alpha], [alpha_leaf.grad])
        return total

    def refine_sparse(self, sampled: Tensor, *, k: int, steps: int, lr: float, seed: int,
                      device: torch.device) -> sp.csr_matrix:
        """Learn the weights of the top-``k`` sparse summary with the same loss (support pattern fixed, weights
        kept >= 0): the sparse summary's own optimisation, since its entries are far fewer than the dense sample's."""
        cfg, data = self.config, self.data
        assert data is not None
        csr = sparsify_rows(sampled, k)  # every rank runs this alike (after the loop; not shared out)
        coo = csr.tocoo()
        rows_t = torch.from_numpy(coo.row.astype(np.int64))
        cols_t = torch.from_numpy(coo.col.astype(np.int64))
        values = torch.nn.Parameter(torch.from_numpy(coo.data.astype(np.float32)).to(device))
        opt = torch.optim.Adam([values], lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            if cfg.batch_users == -1 or cfg.batch_users >= data.n_users:
                users = np.arange(data.n_users)
            else:
                users = np.sort(torch.randperm(data.n_users, generator=gen)[:cfg.batch_users].numpy())
            dense = torch.zeros(csr.shape, device=device).index_put((rows_t, cols_t), values)
            s_leaf = dense.detach().requires_grad_(True)
            self.reconstruction_backward(s_leaf, users, device)
            opt.zero_grad(set_to_none=True)
            dense.backward(s_leaf.grad)
            opt.step()
            with torch.no_grad():
                values.clamp_(min=1e-6)
        return sp.csr_matrix((values.detach().cpu().numpy(), (coo.row, coo.col)), shape=csr.shape)

    # -- model selection ----------------------------------------------------------------------------------------
    def callbacks(self, data: Any, device: torch.device) -> list[Callback]:
        """The model selection: validate on the reference's schedule (:meth:`due`), re-pick λ there and keep the
        best exact sample by validation ``keep_by``; the initial rows are validated first (the first λ)."""
        cfg = self.config
        self._device = torch.device(device)
        self._learner = InfiniteAE(grid=tuple(cfg.reg_grid), depth=cfg.depth, select_metric=cfg.select_metric)
        self.selection = DistillCFSelection(
            self, validate=self.validate, metric=f"val_{self.keep_by}", due=self.due,
            candidate=lambda _: self._sample.cpu() if self._sample is not None else None,
            initial=lambda loop: self.validate(loop, loop.step, initial=True),
            rule=f"best by validation {self.keep_by} (infinity-AE, lambda re-picked by validation {cfg.select_metric} "
                 "at each validation)")
        return [self.selection]

    def schedule(self, step: int) -> bool:
        """Whether step ``step`` (completed steps) re-picks λ: the reference's ``i in [25, 50, ..., 200] or i %
        log_freq == 0`` (noveens/distill_cf distill.py), generalised by ``validate_every``,
        ``validate_dense_until`` and ``log_freq``; the last step always does."""
        cfg = self.config
        return ((cfg.validate_every > 0 and step % cfg.validate_every == 0 and step <= cfg.validate_dense_until)
                or (cfg.log_freq > 0 and step % cfg.log_freq == 0) or step == cfg.steps)

    def keep_only(self, step: int) -> bool:
        """Whether step ``step`` is a ``keep_every`` validation only: its sample competes for the kept one, but λ
        is not re-picked there, so the training trajectory stays the reference's."""
        every = self.config.keep_every
        return not self.schedule(step) and every > 0 and step % every == 0

    def due(self, step: int) -> bool:
        """Whether step ``step`` (completed steps) is validated."""
        return self.schedule(step) or self.keep_only(step)

    def validate(self, loop: Loop, step: int, *, initial: bool = False) -> dict[str, Any]:
        """Validation scores of the exact sample (all ``num_per_user`` draws) of the logits at ``step``, with λ
        picked by infinity-AE on validation ``select_metric``; λ becomes the training λ unless the step is
        :meth:`keep_only`.

        Before the first step (``initial``) the initial logits themselves (the binary rows of the sampled real
        users) are validated, not a Gumbel sample of them, and they are no candidate: the reference validates
        ``params['x']`` before training and keeps ``final_data`` only from training steps (noveens/distill_cf
        distill.py ``train_complete``). On ML-1M 500 users this first λ is 1.0, against 1e-3 picked on a τ = 10
        sample of the same rows.
        """
        assert self._learner is not None, "callbacks() builds the validation learner"
        start = time.perf_counter()
        with torch.no_grad():
            logits = loop.summary.x.detach()
            sampled = logits if initial else self.sample(logits, step_seed(loop.seed, 10**9 + step), exact=True)
        reg, val, _, _ = self._learner.validate(sampled, loop.data, device=self._device)
        keep_only = not initial and self.keep_only(step)
        if not keep_only:
            self.reg = reg
        keep = self.keep_by
        entry: dict[str, Any] = {"val_HR@100": val["HR@100"], "val_nDCG@10": val["nDCG@10"],
                                 "val_select": val[self.config.select_metric], "val_keep": val[keep]}
        entry.setdefault(f"val_{keep}", val[keep])  # the selection metric under its own name
        entry.update({"lambda": reg, "validate_s": round(time.perf_counter() - start, 2)})
        if keep_only:
            entry["keep_only"] = True
        if initial:
            entry["support"] = "initial logits (not sampled)"
            logger.info("distill-cf initial rows: validation HR@100 %.2f nDCG@10 %.2f (lambda %g)", val["HR@100"],
                        val["nDCG@10"], reg)
        else:
            self._sample = sampled
            logger.info("distill-cf step %d: validation HR@100 %.2f nDCG@10 %.2f (lambda %g)", step, val["HR@100"],
                        val["nDCG@10"], reg)
        return entry

    # -- output -------------------------------------------------------------------------------------------------
    def finalize(self, summary: Any, data: InteractionData) -> SparseUserSummary:  # type: ignore[override]
        """The saved summary from the kept sample ``S`` (a tensor): ``S`` as CSR (``sparse_k=-1``, the reference's
        output) or its ``sparse_k`` largest entries per row."""
        if not isinstance(summary, Tensor):
            raise TypeError(f"distill-cf finalizes the kept sample (a tensor), got a {type(summary).__name__}")
        sampled, cfg = summary, self.config
        k = cfg.sparse_k or max(1, round(data.mean_interactions))
        if cfg.sparse_k < 0:  # every entry of the sampled summary (the reference's dense output, stored as CSR)
            matrix = sp.csr_matrix(sampled.detach().cpu().numpy().astype(np.float32))
        elif cfg.sparse_refine_steps > 0 and not cfg.binary_summary:
            matrix = self.refine_sparse(sampled, k=k, steps=cfg.sparse_refine_steps, lr=cfg.sparse_refine_lr,
                                        seed=0, device=sampled.device)
        else:
            matrix = sparsify_rows(sampled, k, binary=cfg.binary_summary)
        final = SparseUserSummary(matrix=matrix, item_ids=data.item_ids, weighted=not cfg.binary_summary)
        self._saved = {"sample": sampled, "summary": final, "item_ids": data.item_ids,
                       "top_k": max(1, round(data.mean_interactions))}
        return final

    def extra_metadata(self) -> dict[str, Any]:
        """Facts of the saved summary for the manifest (after :meth:`finalize`): the synthetic users
        (``resolved_users``), the stored entries per user (``sparse_k``) and, for the dense sample, the ``k`` of its
        sparse form (``sparse_top_k``, judged by :meth:`extra_evaluations`)."""
        if not self._saved:
            return {}
        final = self._saved["summary"]
        out: dict[str, Any] = {"resolved_users": final.budget, "sparse_k": int(final.nnz / max(1, final.budget))}
        if self.config.sparse_k < 0:
            out["sparse_top_k"] = self._saved["top_k"]
        return out

    def extra_evaluations(self) -> dict[str, tuple[SparseUserSummary, EvalProtocol]]:
        """The other form of the kept sample, judged by infinity-AE beside the saved summary (after
        :meth:`finalize`): its top-``sparse_top_k`` rows when the dense sample is saved
        (``sparse_sample_evaluation``), else the dense sample itself (``dense_sample_evaluation``)."""
        if not self._saved:
            return {}
        sample, ae_only = self._saved["sample"], RecsysProtocol(learners=("infinite-ae",)).to_eval_protocol()
        if self.config.sparse_k < 0:
            key, matrix = "sparse_sample_evaluation", sparsify_rows(sample, self._saved["top_k"])
        else:
            key, matrix = "dense_sample_evaluation", sp.csr_matrix(sample.detach().cpu().numpy().astype(np.float32))
        return {key: (SparseUserSummary(matrix=matrix, item_ids=self._saved["item_ids"]), ae_only)}

    # -- state --------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"reg": self.reg}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reg = float(state.get("reg", self.reg))
        if "history" in state and self.selection is not None:
            # a checkpoint written before the selection was distill-core's: its history and kept sample lived here
            self.selection.history = [{**h, "candidate": False} if "support" in h else dict(h)
                                      for h in state["history"]]
            best = state.get("best") or {}
            if best:
                self.selection.best = {"step": best["step"],
                                       "score": float(best.get("val_keep", best["val_select"]))}
                self.selection.kept = best["sample"]
