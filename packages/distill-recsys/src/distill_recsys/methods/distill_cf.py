"""Distill-CF: synthetic users distilled through infinity-AE (Sachdeva, Dhaliwal, Wu & McAuley, NeurIPS 2022).

Paper: "Infinite Recommendation Networks: A Data-Centric Approach", https://arxiv.org/abs/2206.02626; reference
code noveens/distill_cf (facts in ../shared/HYPERPARAMS.md section 8).

Algorithm (one outer step):

1. The summary is a learnable logit matrix ``L`` (``budget x n_items``), initialised with the binary training rows
   of random real users. A sampled summary is ``S = hardtanh(Σ_{s<num_per_user} softmax((L + g_s)/τ))`` with Gumbel
   noise ``g_s`` (:func:`~distill_recsys.gumbel.multi_gumbel_softmax`).
2. infinity-AE fits ``S`` in closed form: ``α = (K_SS + λ tr(K_SS)/n I)^-1 S`` with the NTK of an infinitely wide
   one-hidden-layer ReLU autoencoder (distill-core's :func:`~distill_core.kernels.fc_ntk`, ``krr_solve``).
3. Real users ``X`` (their training rows) are reconstructed, ``P = K_XS α``, and the loss is the multinomial
   likelihood ``mean_u -Σ_i X_ui log softmax(P_u)_i`` plus ``cardinality_reg · mean_row_sum(S) / mean_interactions``.
4. Adam on ``L``.

Memory is bounded by the user batch: real users are densified ``user_chunk`` rows at a time; their gradients are
accumulated into ``S`` and ``α`` (leaves), and one backward pass then reaches ``L`` through the solve and the
sampler, whose noise is regenerated rather than stored. λ is re-picked on validation HR@100 at every validation
and the best sampled summary by validation HR@100 is kept (the reference's model selection, on its schedule: steps
25, 50, ..., 200 and every 40th step).

The saved summary is, by default, the best sampled ``S`` itself stored as CSR (``sparse_k=-1``): the reference saves
and evaluates exactly this dense, continuous sample (``final_data = multi_gumbel_sampling(key, params)[0]`` in
noveens/distill_cf distill.py; with τ = 10 every entry is positive and each row sums to ``num_per_user``).
``sparse_k > 0`` (or 0: the real users' mean interactions) keeps only the largest entries of each row (weighted,
or binary): a genuinely sparse summary, but the information of a τ = 10 sample is spread over all items, so on
ML-1M 500 users the top-131 summary scores below 500 random users (benchmarks/recsys/results.md); use it for
exports that must be sparse, and :func:`sparsify_rows` / :meth:`SparseUserSummary.top_k` to derive it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from distill_core.data import Budget
from distill_core.errors import DataValidationError
from distill_core.kernels import fc_ntk
from distill_core.method import Method, MethodConfig, StepContext
from distill_core.modality import Modality
from distill_core.objectives import krr_solve
from distill_core.registry import register_method

from ..data import InteractionData, csr_rows_to_dense
from ..gumbel import multi_gumbel_softmax
from ..metrics import metric_names
from ..summary import SparseUserSummary, UserLogitSummary
from ._common import resolve_user_budget

__all__ = ["DistillCF", "DistillCFConfig", "sparsify_rows"]

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


def sparsify_rows(dense: Tensor, k: int, *, binary: bool = False) -> sp.csr_matrix:
    """Keep the ``k`` largest positive entries of each row of ``dense (n, m)`` as a CSR matrix."""
    k = max(1, min(k, dense.shape[1]))
    values, idx = dense.detach().float().topk(k, dim=1)
    keep = values > 0
    rows = torch.arange(len(dense))[:, None].expand_as(idx)[keep].numpy()
    vals = np.ones(int(keep.sum()), dtype=np.float32) if binary else values[keep].numpy().astype(np.float32)
    return sp.csr_matrix((vals, (rows, idx[keep].numpy())), shape=tuple(dense.shape))


@register_method("distill-cf")
class DistillCF(Method[DistillCFConfig]):
    """Distill-CF: Gumbel-sampled synthetic users fit through infinity-AE (Sachdeva et al. 2022)."""

    modality = "recsys"
    config_class = DistillCFConfig
    paper = "https://arxiv.org/abs/2206.02626"

    def __init__(self, *, config: DistillCFConfig | None = None) -> None:
        super().__init__(config=config)
        known = metric_names()
        for name in ("select_metric", "keep_metric"):
            value = getattr(self.config, name)
            if value not in known and not (name == "keep_metric" and value == ""):
                raise DataValidationError(f"distill-cf {name}={value!r} is not a validation metric; use one of "
                                          f"{', '.join(known)}")
        self.reg: float = 1.0
        self.best: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.data: InteractionData | None = None

    @property
    def keep_by(self) -> str:
        """The validation metric that picks the kept sample (``keep_metric``, else ``select_metric``)."""
        return self.config.keep_metric or self.config.select_metric

    # -- summary ------------------------------------------------------------------------------------------------
    def init_summary(self, data: InteractionData, *, budget: Budget,  # type: ignore[override]
                     modality: Modality, generator: torch.Generator) -> UserLogitSummary:
        """Logits = the binary training rows of ``budget`` random real users with training data."""
        n = resolve_user_budget(budget, data)
        active = np.nonzero(data.train.getnnz(axis=1) > 0)[0]
        if n > len(active):
            raise DataValidationError(f"{data.name}: a budget of {n} synthetic users exceeds the {len(active)} users "
                                      f"with training interactions; ask for at most {len(active)}")
        pick = active[torch.randperm(len(active), generator=generator)[:n].numpy()]
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
        sampled = self.sample(summary.x, ctx.seed)
        s_leaf = sampled.detach().requires_grad_(True)
        total = self.reconstruction_backward(s_leaf, users, device)
        ctx.optimizer.zero_grad(set_to_none=True)
        grad_s = s_leaf.grad
        assert grad_s is not None
        sampled.backward(grad_s)
        if summary.x.grad is None or not torch.isfinite(summary.x.grad).all():
            raise FloatingPointError("the gradient of the Distill-CF logits is not finite")
        if not np.isfinite(total):
            raise FloatingPointError(f"the outer loss is {total}")
        ctx.optimizer.step()
        return total

    def reconstruction_backward(self, s_leaf: Tensor, users: np.ndarray, device: torch.device) -> float:
        """infinity-AE loss of the real ``users`` given the support ``s_leaf`` (a leaf); accumulates its gradient
        into ``s_leaf.grad`` chunk by chunk (memory of one ``user_chunk``) and returns the loss value."""
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
            loss = -(torch.log_softmax(pred, dim=-1) * x_real).sum() / len(users)
            loss.backward()
            total += float(loss.detach())
        card = cfg.cardinality_reg * s_leaf.sum(1).mean() / max(data.mean_interactions, 1e-12)
        card.backward()
        total += float(card.detach())
        # chain rule through the solve (α) and the support kernel
        torch.autograd.backward([alpha], [alpha_leaf.grad])
        return total

    def refine_sparse(self, sampled: Tensor, *, k: int, steps: int, lr: float, seed: int,
                      device: torch.device) -> sp.csr_matrix:
        """Learn the weights of the top-``k`` sparse summary with the same loss (support pattern fixed, weights
        kept >= 0): the sparse summary's own optimisation, since its entries are far fewer than the dense sample's."""
        cfg, data = self.config, self.data
        assert data is not None
        csr = sparsify_rows(sampled, k)
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

    # -- output -------------------------------------------------------------------------------------------------
    def final_summary(self, sampled: Tensor, data: InteractionData) -> SparseUserSummary:
        """The saved summary: the sampled ``S`` as CSR (``sparse_k=-1``, the reference's output) or its
        ``sparse_k`` largest entries per row."""
        cfg = self.config
        k = cfg.sparse_k or max(1, round(data.mean_interactions))
        if cfg.sparse_k < 0:  # every entry of the sampled summary (the reference's dense output, stored as CSR)
            matrix = sp.csr_matrix(sampled.detach().cpu().numpy().astype(np.float32))
        elif cfg.sparse_refine_steps > 0 and not cfg.binary_summary:
            matrix = self.refine_sparse(sampled, k=k, steps=cfg.sparse_refine_steps, lr=cfg.sparse_refine_lr,
                                        seed=0, device=sampled.device)
        else:
            matrix = sparsify_rows(sampled, k, binary=cfg.binary_summary)
        return SparseUserSummary(matrix=matrix, item_ids=data.item_ids, weighted=not cfg.binary_summary)

    def state_dict(self) -> dict[str, Any]:
        return {"reg": self.reg, "best": self.best, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reg = float(state.get("reg", self.reg))
        self.best = dict(state.get("best", {}))
        self.history = list(state.get("history", []))
