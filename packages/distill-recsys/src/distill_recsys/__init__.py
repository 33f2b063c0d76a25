"""distill-recsys: Distill-CF (synthetic users through the infinite-width autoencoder kernel) for sparse
implicit-feedback data, user-coreset baselines, four learners (infinity-AE, EASE, ALS, BPR) and ranking metrics."""

from .data import InteractionData, SplitProtocol, as_csr, build_interaction_data, split_codes
from .datasets import load, load_csv, load_movielens_1m, load_movielens_100k, load_sparse_npz
from .evaluation import RecsysEvalProtocol, RecsysEvalResult, RecsysProtocol, evaluate_support
from .gumbel import multi_gumbel_softmax
from .learners import ALS, BPR, EASE, InfiniteAE, get_learner
from .methods import DistillCF, DistillCFConfig, DistillCFSelection, HeadUsers, KCenterUsers, RandomUsers
from .metrics import RankingAccumulator, evaluate_scorer, ranking_metrics
from .modality import RecsysModality
from .summary import SparseUserSummary, UserLogitSummary, sparsify_rows, summary_of

__version__ = "0.1.0"

__all__ = [
    "ALS",
    "BPR",
    "EASE",
    "DistillCF",
    "DistillCFConfig",
    "DistillCFSelection",
    "HeadUsers",
    "InfiniteAE",
    "InteractionData",
    "KCenterUsers",
    "RandomUsers",
    "RankingAccumulator",
    "RecsysEvalProtocol",
    "RecsysEvalResult",
    "RecsysModality",
    "RecsysProtocol",
    "SparseUserSummary",
    "SplitProtocol",
    "UserLogitSummary",
    "__version__",
    "as_csr",
    "build_interaction_data",
    "evaluate_scorer",
    "evaluate_support",
    "get_learner",
    "load",
    "load_csv",
    "load_movielens_100k",
    "load_movielens_1m",
    "load_sparse_npz",
    "multi_gumbel_softmax",
    "ranking_metrics",
    "sparsify_rows",
    "split_codes",
    "summary_of",
]
